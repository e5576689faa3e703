"""Run in the tpu-env: parse command lines as `vllm serve` does; report the engine arguments.

argv[1]: JSON {"argvs": [[arg, ...], ...]} (what follows `vllm serve`); argv[2]: where to write
{"results": [{"ok": true, "engine": {...}} | {"ok": false, "error": "..."}, ...] in the same order,
"table": the flag table tools/vllm_flags.py derives from this parser}. The parser is the real one
(tools/vllm_flags.py builds it as the `vllm` command does); the engine arguments are
`AsyncEngineArgs.from_cli_args` of the parsed namespace, after serve's own validation.
"""

import contextlib
import dataclasses
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))

from vllm_flags import cli_parsers, table

FIELDS = (
    "model",
    "served_model_name",
    "revision",
    "tensor_parallel_size",
    "data_parallel_size",
    "pipeline_parallel_size",
    "max_model_len",
    "max_num_batched_tokens",
    "max_num_seqs",
    "enable_prefix_caching",
    "enable_chunked_prefill",
    "kv_cache_dtype",
    "distributed_executor_backend",
    "speculative_config",
    "seed",
)


def jsonable(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def main() -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    argvs = json.loads(Path(sys.argv[1]).read_text())["argvs"]
    top, serve, _ = cli_parsers()
    results = []
    for argv in argvs:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                args = top.parse_args(["serve", *argv])
                serve.validate(args)
            if getattr(args, "model_tag", None) is not None:  # as ServeSubcommand.cmd does
                args.model = args.model_tag
            engine = AsyncEngineArgs.from_cli_args(args)
        except SystemExit:
            lines = err.getvalue().strip().splitlines()
            results.append({"ok": False, "error": lines[-1] if lines else "argparse exited"})
            continue
        except Exception as exc:  # vLLM's own validation raises plain exceptions
            results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            continue
        engine_fields = {f: jsonable(getattr(engine, f, None)) for f in FIELDS}
        engine_fields["host"], engine_fields["port"] = args.host, args.port
        results.append({"ok": True, "engine": engine_fields})
    Path(sys.argv[2]).write_text(json.dumps({"results": results, "table": table()}))


if __name__ == "__main__":
    main()
