"""Run the fake Bot API standalone: ``python -m tests.fakebotapi --port N --state-file F``.

Prints ``listening on http://HOST:PORT`` once ready. Control API on the same port:
``GET /control/state``; ``POST /control/{dump,inject,clear_faults,channel,group,user,kick,unkick,
push_message,limits}`` with a JSON body of the matching FakeBotApi method's keyword arguments.
The state file is rewritten shortly after every accepted message, on ``/control/dump`` and on exit.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from tests.fakebotapi.server import DEFAULT_BOT_USERNAME, FakeBotApi
from tests.fakebotapi.throttling import RateLimits


def _optional_int(value: str) -> int | None:
    return None if value.lower() in ("none", "off") else int(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakebotapi", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--state-file", required=True, help="where recorded state is written as JSON")
    parser.add_argument("--bot-username", default=DEFAULT_BOT_USERNAME)
    parser.add_argument("--seed", type=int, default=0, help="seed for probabilistic faults")
    parser.add_argument(
        "--global-limit", type=_optional_int, default=30, help="messages per second, all chats"
    )
    parser.add_argument(
        "--group-limit", type=_optional_int, default=20, help="messages per minute per group/channel"
    )
    parser.add_argument(
        "--private-limit", type=_optional_int, default=None, help="messages per second per user"
    )
    args = parser.parse_args(argv)

    limits = RateLimits(
        global_limit=args.global_limit, group_limit=args.group_limit, private_limit=args.private_limit
    )
    fake = FakeBotApi(
        args.host,
        args.port,
        bot_username=args.bot_username,
        limits=limits,
        seed=args.seed,
        state_file=args.state_file,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with fake:
        fake.dump_state()
        print(f"listening on {fake.url}", flush=True)
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
