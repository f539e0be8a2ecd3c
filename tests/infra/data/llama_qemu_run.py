"""Run the llama.cpp analyser's handler from a root filesystem alone; started by tests/infra/test_llama_qemu.py
as `qemu-x86_64 -cpu MODEL python -I -S llama_qemu_run.py TASK_ROOT EVENT_JSON` (no venv, no site-packages:
only what the artifact ships is importable).

SIEVE_TEST_GGML_CPU=/path/libggml-cpu.so registers that CPU backend instead of the artifact's variants
(the native, non-dispatch build the test shows dying with SIGILL). Prints one JSON line on success.
"""

import json
import os
import sys
import time

started = time.perf_counter()
task_root = sys.argv[1]
sys.path.insert(0, task_root)

native = os.environ.get("SIEVE_TEST_GGML_CPU")
if native:
    import ctypes
    from pathlib import Path

    import llama_cpp

    ggml = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml.so.0"))
    cpu = ctypes.CDLL(native)
    cpu.ggml_backend_cpu_reg.restype = ctypes.c_void_p
    ggml.ggml_backend_register.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_register(cpu.ggml_backend_cpu_reg())

from processors.adapters.llama import loaded_cpu_variant  # noqa: E402
from processors.handlers import llama_lambda  # noqa: E402

imported = time.perf_counter()
result = llama_lambda.handler(json.loads(sys.argv[2]), None)
print(json.dumps({
    "result": result,
    "variant": loaded_cpu_variant(),
    "import_s": round(imported - started, 2),
    "total_s": round(time.perf_counter() - started, 2),
    "python": sys.version.split()[0],
    "sys_path_0": sys.path[0],
    "llama_cpp": sys.modules["llama_cpp"].__file__,
}), flush=True)
