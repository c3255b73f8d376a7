"""segprep's one I/O core: readers (:mod:`.read`), the PNG encoder (:mod:`.png`), the atomic
writer (:mod:`.write`), file discovery (:mod:`.files`) and the batch core (:mod:`.batch`).

The names below are the public API; import them from ``segprep.io``.
"""

from segprep.io.batch import (
                              BatchSummary,
                              Outcome,
                              chunked,
                              default_jobs,
                              describe,
                              resolve_jobs,
                              run_batch,
)
from segprep.io.files import (
                              check_output_file,
                              ensure_output_dir,
                              ensure_output_dirs,
                              find_files,
                              refuse_overwriting_inputs,
)
from segprep.io.png import PNG_LEVEL, encode_png
from segprep.io.read import (
                              MAX_PIXELS,
                              PNG_SIGNATURE,
                              PngHeader,
                              check_size,
                              decode_label,
                              image_mode,
                              image_size,
                              png_header,
                              read_bytes,
                              read_image,
                              read_label,
                              read_png,
)
from segprep.io.scratch import scratch
from segprep.io.write import (
                              atomic_write,
                              atomic_write_bytes,
                              atomic_write_text,
                              remove_stale_temps,
                              write_image,
                              write_json,
                              write_png,
                              write_zip,
)

__all__ = [
    "BatchSummary", "MAX_PIXELS", "Outcome", "PNG_LEVEL", "PNG_SIGNATURE", "PngHeader",
    "atomic_write", "atomic_write_bytes", "atomic_write_text", "check_output_file", "check_size",
    "chunked", "decode_label", "default_jobs", "describe", "encode_png", "ensure_output_dir",
    "ensure_output_dirs", "find_files", "image_mode",
    "image_size", "png_header", "read_bytes", "read_image", "read_label",
    "read_png", "refuse_overwriting_inputs", "remove_stale_temps", "resolve_jobs", "run_batch",
    "scratch", "write_image", "write_json", "write_png", "write_zip",
]
