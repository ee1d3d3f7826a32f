"""`kws-search dashboard`: optuna-dashboard on the study storage, with the trial checkpoints.

Serves optuna-dashboard's WSGI app with the study's artifact folder, so metric names, user
attributes, infeasible trials (greyed from the `constraints` system attribute) and each
trial's checkpoint show up. Plain `optuna-dashboard sqlite:///studies/kws.db
--artifact-dir studies/kws-artifacts` shows the same.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from kws_search.commands.common import add_study_options
from kws_search.commands.report import study_storage

logger = logging.getLogger(__name__)

HELP = """examples:
  kws-search dashboard                           # studies/kws.db at http://127.0.0.1:8080
  kws-search dashboard --study quick --port 8081
  kws-search dashboard --storage postgresql://user:pw@db-host/kws --study shared
  ssh -L 8080:127.0.0.1:8080 gpu-box             # then open it from your laptop
"""


class ThreadedWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per request, as optuna-dashboard's own wsgiref server does."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    """Request lines go to the debug log, not stderr."""

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


def study_artifact_dir(study_name: str, storage: str) -> Path | None:
    """The study's artifact folder: its `artifact_dir` attribute, else next to the database."""
    from kws_search.search.storage import artifact_dir_for, load_study

    study = load_study(study_name, storage, require_trials=False)
    recorded = study.user_attrs.get("artifact_dir")
    for path in (Path(recorded) if recorded else None, artifact_dir_for(storage, study_name)):
        if path is not None and path.is_dir():
            return path
    return None


def build_server(storage: str, host: str = "127.0.0.1", port: int = 8080,
                 artifact_dir: Path | None = None) -> WSGIServer:
    """A bound optuna-dashboard server (port 0 picks a free one); call `serve_forever`."""
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    from kws_search.search.storage import open_storage

    store = FileSystemArtifactStore(str(artifact_dir)) if artifact_dir else None
    app = optuna_dashboard.wsgi(open_storage(storage, heartbeat=False), artifact_store=store)
    try:
        return make_server(host, port, app, server_class=ThreadedWSGIServer,
                           handler_class=QuietHandler)
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                      "choose another --port") from None


def study_url(server: WSGIServer, host: str, study_name: str, storage: str) -> str:
    """The dashboard page of the study."""
    from kws_search.search.storage import open_storage

    rdb = open_storage(storage, heartbeat=False)
    study_id = rdb.get_study_id_from_name(study_name)
    return f"http://{host}:{server.server_port}/dashboard/studies/{study_id}"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dashboard", help="browse the study in optuna-dashboard",
                            epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_options(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s; 0.0.0.0 exposes it "
                             "to the network without any authentication)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from kws_search.search.storage import masked_url

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = study_storage(args)
    artifact_dir = study_artifact_dir(args.study, storage)  # clear error if no such study
    server = build_server(storage, args.host, args.port, artifact_dir)
    print(f"optuna-dashboard for {masked_url(storage)}")
    print(f"trial checkpoints from {artifact_dir}" if artifact_dir
          else "no artifact folder found: trial checkpoints will not be listed")
    print(f"study {args.study!r}: {study_url(server, args.host, args.study, storage)}")
    print("Ctrl-C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
