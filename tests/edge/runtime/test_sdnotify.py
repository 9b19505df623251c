"""The systemd notifier (emoedge.edge.runtime.sdnotify): READY and WATCHDOG messages."""




def test_systemd_notifier_sends_ready_and_watchdog(tmp_path):
    import socket

    from emoedge.edge.runtime.sdnotify import Notifier

    path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.notify("READY=1") and n.notify("WATCHDOG=1")
    assert srv.recv(64) == b"READY=1" and srv.recv(64) == b"WATCHDOG=1"
    n.close()
    srv.close()
    assert Notifier({}).notify("READY=1") is False
