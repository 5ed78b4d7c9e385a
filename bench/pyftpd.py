"""pyftpdlib for bench/compare.sh: anonymous with write permission, no connection limit.

Usage: python3 pyftpd.py async|threaded PORT DIR
The async server is pyftpdlib's FTPServer (one process, epoll); the threaded one is
ThreadedFTPServer (a thread per session). Its `--concurrency multi-thread` command-line
option crashes in 2.2.0, hence these few lines. Logs go to stderr at pyftpdlib's own
default level (INFO), as `python -m pyftpdlib` does.
"""

import logging
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer, ThreadedFTPServer


def main():
    mode, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    logging.basicConfig(level=logging.INFO)
    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(root, perm="elradfmwMT")
    handler = FTPHandler
    handler.authorizer = authorizer
    cls = {"async": FTPServer, "threaded": ThreadedFTPServer}[mode]
    server = cls(("127.0.0.1", port), handler)
    server.max_cons = 0  # no limit: the idle workload holds 1,000 sessions
    server.max_cons_per_ip = 0
    print("listening on 127.0.0.1:%d" % server.address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
