"""Dataset images over HTTP: cached thumbnails (ETag + Cache-Control) and the originals.

Only files inside the datasets root of the preferences are served; anything else, by
`..` or by a symbolic link, is a 403 with the reason (ErrorBody). Handlers are plain
functions, so FastAPI runs them in its thread pool and a cold thumbnail never blocks the
event loop. The URLs are built by app.services.dataset_links.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException
from fastapi.responses import FileResponse, Response

from app.routes.api import COMMON_ERRORS, ApiRoute, error_responses
from app.routes.deps import DatasetServiceDep
from app.services.dataset_browser import OutsideRootError
from app.services.dataset_links import DATASETS_API_PREFIX, image_url, thumbnail_url
from app.services.dataset_scan import IMAGE_EXTENSIONS
from app.services.datasets import DatasetService
from app.services.thumbnails import MEDIA_TYPE, ThumbnailError, thumbnail_key

__all__ = ["image_url", "router", "thumbnail_url"]

router = APIRouter(
    prefix=DATASETS_API_PREFIX,
    tags=["datasets"],
    responses={**COMMON_ERRORS, **error_responses(404)},
    route_class=ApiRoute,
)

# A thumbnail URL carries the image's version (?v=key), so the browser may keep it a long
# time; without it the browser revalidates with If-None-Match and usually gets a 304.
VERSIONED_CACHE = "private, max-age=31536000, immutable"
UNVERSIONED_CACHE = "private, max-age=0, must-revalidate"


def _image_path(service: DatasetService, path: str) -> Path:
    try:
        image = service.root.resolve(path)
    except OutsideRootError as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from exc
    if image.suffix.lower() not in IMAGE_EXTENSIONS:
        raise HTTPException(status_code=404, detail=f"{image.name[:200]} is not an image file")
    try:
        found = image.is_file()
    except OSError:  # e.g. a name too long for the file system
        found = False
    if not found:
        raise HTTPException(status_code=404, detail=f"{image.name[:200]} does not exist")
    return image


_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/*": {}}, "description": "the image"}
}


@router.get("/thumbnail", response_class=Response, responses=_IMAGE)
def get_thumbnail(
    service: DatasetServiceDep,
    path: str,
    v: str | None = None,
    if_none_match: Annotated[str, Header()] = "",
) -> Response:
    image = _image_path(service, path)
    cache_control = VERSIONED_CACHE if v else UNVERSIONED_CACHE
    try:
        etag = f'"{thumbnail_key(image)}"'
    except OSError as exc:
        raise HTTPException(status_code=404, detail=f"{image.name} cannot be read") from exc
    if etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": cache_control})
    try:
        thumb = service.thumbnails.get(image)
        data = thumb.path.read_bytes()
    except ThumbnailError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return Response(
        content=data,
        media_type=MEDIA_TYPE,
        headers={"ETag": f'"{thumb.etag}"', "Cache-Control": cache_control},
    )


@router.get("/image", response_class=FileResponse, responses=_IMAGE)
def get_image(service: DatasetServiceDep, path: str) -> FileResponse:
    image = _image_path(service, path)
    # Starlette adds ETag and Last-Modified from the file's stat.
    return FileResponse(image, headers={"Cache-Control": UNVERSIONED_CACHE})
