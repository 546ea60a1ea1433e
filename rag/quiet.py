"""Keep library chatter (deprecation warnings, weight-loading bars and reports) out of the terminal.

Called by the CLI, and by the model loaders once they have imported transformers; our own
progress bars and errors stay.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings


def quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"langchain.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|sentence_transformers).*")
    for name in ("transformers", "sentence_transformers", "huggingface_hub", "faiss"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # bm25s sets its logger to DEBUG when imported ("Building index from tokens" reached `make demo`
    # once a library configured the root logger): a filter outlives that setLevel
    bm25s = logging.getLogger("bm25s")
    if _below_warning not in bm25s.filters:
        bm25s.addFilter(_below_warning)
    if "transformers" in sys.modules:  # never imported here: a load that skips it saves its memory
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _below_warning(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING
