"""Signals in the middle of traffic.

The loop's signal handlers are installed without SA_RESTART, so a signal
interrupts poll() (EINTR) and any call it lands in. A storm of SIGHUPs
(each one reloads the secret file) while messages flow must lose no
message, corrupt none, and leave the server running; SIGTERM then still
stops it cleanly (the fixture checks exit 0).
"""
import os
import signal
import threading
import time

from wsraw import OP_BINARY, OP_TEXT


def test_sighup_storm_during_echo(server, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("storm-secret\n")
    s = server("--echo", "--secret-file", str(secret))
    pid = s.proc.pid
    stop = threading.Event()
    sent = []

    def storm():
        while not stop.is_set() and len(sent) < 300:
            os.kill(pid, signal.SIGHUP)
            sent.append(1)
            time.sleep(0.002)

    t = threading.Thread(target=storm, daemon=True)
    c = s.ws()
    t.start()
    deadline = time.monotonic() + 20
    try:
        # Echo for as long as the storm lasts (bounded in count and time).
        i = 0
        while t.is_alive() and i < 100000 and time.monotonic() < deadline:
            i += 1
            payload = (b"%06d" % i) * (1 + i % 50)
            op = OP_TEXT if i % 2 else OP_BINARY
            if op == OP_TEXT:
                c.send_text(payload)
            else:
                c.send_binary(payload)
            assert c.recv_message()[:2] == (op, payload), i
    finally:
        stop.set()
        t.join(5)
        c.close()
    assert len(sent) == 300 and i > 0, (len(sent), i)
    assert s.proc.poll() is None
    # A fresh connection after the storm works too.
    d = s.ws()
    d.send_text(b"after")
    assert d.recv_message()[:2] == (OP_TEXT, b"after")
    d.close()
