"""gancli's command line: thin commands that parse, call gancli.api, and render with rich. This module assembles
them: each command's module adds it to `app`, `eval_app` or `bench_app` as it is imported, in the order help lists
them."""

from gancli.cli.app import app, bench_app, eval_app
from gancli.cli import recipes, train, sample, bench_train  # noqa: E402,I001 (the order is the help's order)
from gancli.cli import eval_gen, eval_truncation, eval_iqa, eval_sr, bench_eval, upscale, runs  # noqa: E402,I001
from gancli.cli import synthesize, translate, eval_prd, eval_jacobian, study, import_, serve  # noqa: E402,I001
from gancli.cli import eval_pyiqa, export  # noqa: E402,I001

__all__ = ["app", "bench_app", "eval_app"]
