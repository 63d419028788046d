"""Serve the FiftyOne App for a fercurate dataset, and stop it cleanly.

The App is started the FiftyOne way (``fo.launch_app(remote=True)``): the server then
holds the session's state, which the App needs to open a dataset from its URL. Closing
the session stops FiftyOne's server service; if the launcher dies instead, the service
sees its parent's pipe close and stops the server itself.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import fiftyone as fo

from fercurate import config
from fercurate.errors import FercurateError

ADDRESS = "127.0.0.1"


def url_for(dataset_name: str, port: int, address: str = ADDRESS) -> str:
    return f"http://{address}:{port}/datasets/{dataset_name}"


def port_is_free(port: int, address: str = ADDRESS) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def start(dataset: fo.Dataset, port: int = config.DEFAULT_APP_PORT, address: str = ADDRESS) -> fo.Session:
    """Start the App server on ``address:port`` showing ``dataset``; returns the session."""
    if not port_is_free(port, address):
        raise FercurateError(f"port {port} on {address} is in use (another App?); pass --port N with a free port")
    # the server process inherits the environment; a user's own plugins folder wins, and
    # then holds fercurate's plugin only if they put it there (`fercurate plugin-path`)
    os.environ.setdefault("FIFTYONE_PLUGINS_DIR", str(config.plugins_dir()))
    return fo.launch_app(dataset, remote=True, address=address, port=port, auto=False)


def stop(session: fo.Session) -> None:
    """Close the session; FiftyOne stops its server once no session uses the port."""
    session.close()


def serve_until_stopped(session: fo.Session) -> None:
    """Block until Ctrl-C (SIGINT) or SIGTERM, then stop the App server.

    Both handlers are installed explicitly: a process started in the background by a
    non-interactive shell (``cmd &`` in a script, CI) inherits SIGINT as *ignored*, and
    Python then never raises KeyboardInterrupt, so ``kill -INT`` would not stop the App.
    """
    def _raise_interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop(session)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
