"""A local Cloud Storage emulator for the tests: gcp-storage-emulator (PyPI), plus the two parts of
the JSON API that orbax's tensorstore driver relies on and that emulator lacks:

  - generation headers (x-goog-generation, x-goog-metageneration) on media downloads: tensorstore
    stamps every read with the object's generation;
  - generation preconditions: ifGenerationMatch on uploads and deletes (412 when the object's
    generation differs; 0 means "does not exist") and ifGenerationNotMatch on downloads (304 when
    it matches). OCDBT commits its manifest with these compare-and-swap writes.

    python tests/gcs_emulator.py PORT BUCKET      # serves on 127.0.0.1:PORT, in memory

Clients: gcsfs reads STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT; tensorstore reads
TENSORSTORE_GCS_HTTP_URL (same URL) and GOOGLE_AUTH_TOKEN_FOR_TESTING (any value).
"""

import functools
import sys
import threading
from http import HTTPStatus

from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects


def _generation(storage, bucket: str, name: str) -> str:
  """The object's generation, "0" when it does not exist (the API's convention)."""
  try:
    return str(storage.get_file_obj(bucket, name)["generation"])
  except NotFound:
    return "0"


def _query(request, key: str):
  values = request.query.get(key)
  return values[0] if values else None


_LOCK = threading.Lock()  # a precondition and the write it guards are one step


def _guarded(handler, name_of, *, media: bool):
  """`handler` with generation preconditions checked first (and generation headers on media)."""

  @functools.wraps(handler)
  def wrapped(request, response, storage, *args, **kwargs):
    with _LOCK:
      return _checked(handler, name_of, media, request, response, storage, *args, **kwargs)

  return wrapped


def _checked(handler, name_of, media, request, response, storage, *args, **kwargs):
  bucket, name = request.params["bucket_name"], name_of(request)
  if name is not None:
    current = _generation(storage, bucket, name)
    match, not_match = _query(request, "ifGenerationMatch"), _query(request, "ifGenerationNotMatch")
    if match is not None and match != current:
      response.status = HTTPStatus.PRECONDITION_FAILED
      return None
    if not_match is not None and not_match == current:
      response.status = HTTPStatus.NOT_MODIFIED
      return None
    if media and current != "0":
      obj = storage.get_file_obj(bucket, name)
      response["x-goog-generation"] = str(obj["generation"])
      response["x-goog-metageneration"] = str(obj["metageneration"])
  return handler(request, response, storage, *args, **kwargs)


def _object_id(request):
  return request.params.get("object_id")


def _upload_name(request):
  """The object an upload creates: the query's name, else the metadata's (multipart: its "meta"
  part; resumable: the JSON body)."""
  name = _query(request, "name")
  if name is None and isinstance(request.data, dict):
    name = (request.data.get("meta") or {}).get("name") or request.data.get("name")
  return name


def _is_media(request) -> bool:
  return _query(request, "alt") == "media"


def _get(request, response, storage, *args, **kwargs):
  if _is_media(request):
    return objects.download(request, response, storage, *args, **kwargs)
  return _plain_get(request, response, storage, *args, **kwargs)


# Patched before the server module is imported: its routing table takes these functions.
_plain_get = objects.get
objects.download = _guarded(objects.download, _object_id, media=True)
objects.get = _get
objects.delete = _guarded(objects.delete, _object_id, media=False)
objects.insert = _guarded(objects.insert, _upload_name, media=False)

from gcp_storage_emulator.server import create_server  # noqa: E402  pylint: disable=g-import-not-at-top


def main(port: int, bucket: str) -> None:
  server = create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
  server.run()  # serves until killed


if __name__ == "__main__":
  main(int(sys.argv[1]), sys.argv[2])
