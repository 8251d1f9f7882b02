"""``polyclinic hub``: a LOCAL Hub-compatible server (files on disk, loopback only) for pushes, tests and demos."""

from __future__ import annotations

import argparse

from polyclinic.logging_utils import get_logger

log = get_logger("polyclinic.hub")

DESCRIPTION = """\
Local Hub-compatible server. This is NOT the Hugging Face Hub: it stores repositories under --root on
this machine, accepts any token and knows one fake user ("local-user"). Unmodified huggingface_hub,
datasets, transformers and sentence-transformers upload to it and download from it once these are set:

  HF_ENDPOINT=<the printed URL>  HF_HUB_DISABLE_XET=1  HF_TOKEN=<anything>

(huggingface_hub reads HF_ENDPOINT when imported: set it before starting Python. Never set
HF_HUB_OFFLINE=1 while talking to it: offline mode blocks loopback too.)

  serve   run the server in the foreground until Ctrl-C
"""

SERVE_EPILOG = """\
examples:
  polyclinic hub serve --root runs/local-hub
  polyclinic hub serve --root runs/local-hub --port 8765
  polyclinic hub serve --root runs/local-hub --port 8765 --token my-local-hub-token-123
  HF_ENDPOINT=http://127.0.0.1:8765 HF_HUB_DISABLE_XET=1 HF_TOKEN=my-local-hub-token-123 polyclinic push release.yaml
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("serve", help="run the local Hub-compatible server", epilog=SERVE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="folder holding repositories and objects (created; survives restarts)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; loopback only unless --allow-non-loopback)")
    p.add_argument("--port", type=int, default=0, help="port (default 0 = pick a free one and print it)")
    p.add_argument("--allow-non-loopback", action="store_true",
                   help="allow binding a non-loopback address (anyone who can reach it can read public repos; "
                   "writes and private reads still need the token)")
    p.add_argument("--token", default=None, help="the token clients must send for writes and private reads "
                   "(default: POLYCLINIC_HUB_TOKEN, else a random one, printed at start)")
    p.add_argument("--max-json-mb", type=float, default=100.0, help="cap for JSON/NDJSON request bodies (MB, 413 above)")
    p.add_argument("--max-lfs-gb", type=float, default=5.0, help="cap for one LFS object upload (GiB, 413 above)")
    return parser


def main(argv: list[str], prog: str) -> int:
    args = build_parser(prog).parse_args(argv)

    from polyclinic.hub.server import serve

    server = serve(
        args.root,
        host=args.host,
        port=args.port,
        allow_non_loopback=args.allow_non_loopback,
        max_json_bytes=int(args.max_json_mb * 1024 * 1024),
        max_lfs_bytes=int(args.max_lfs_gb * 1024**3),
        background=False,
        token=args.token,
    )
    log.warning("this is a LOCAL Hub-compatible server for testing and demos, NOT the Hugging Face Hub")
    log.info("serving repositories from %s at %s", server.root, server.url)
    print(f"Local hub (NOT the real Hugging Face Hub) listening on {server.url}", flush=True)
    print("Point the Hugging Face clients at it with:", flush=True)
    for key, value in server.env.items():
        print(f"  export {key}={value}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("local hub stopped")
    finally:
        server.shutdown()
    return 0
