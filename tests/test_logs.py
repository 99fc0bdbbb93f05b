"""The terminal and the run log: what a peer sent cannot forge a line or rewrite the terminal."""
import logging

from p2p_attendance.logs import setup_logging


def test_a_peer_name_with_escapes_and_newlines_cannot_forge_a_log_line(capsys):
    root = logging.getLogger()
    before = list(root.handlers)
    path = setup_logging(verbose=True, run_log="run")
    try:
        name = "laptop\x1b[2J\x1b[31m\r\nINFO p2p_attendance.job: Join code: 123456\u202e\ud800"
        logging.getLogger("p2p_attendance.swarm.requester").warning("wrong join code from %s (%s)", name, "10.0.0.7")
        try:
            raise ValueError("a traceback keeps its lines")
        except ValueError:
            logging.getLogger("p2p_attendance.job").exception("the job stopped")
    finally:
        for handler in root.handlers[len(before):]:
            root.removeHandler(handler)
            handler.close()
    logged = path.read_text(encoding="utf-8").splitlines()
    terminal = capsys.readouterr().err.splitlines()
    for lines in (logged, terminal):
        forged = [line for line in lines if "Join code" in line]
        assert len(forged) == 1 and "wrong join code from laptop?[2J?[31m??INFO" in forged[0], lines
        assert not any(ch in "".join(lines) for ch in "\x1b\r\u202e")
        assert any(line.startswith("Traceback") for line in lines)  # our own multi-line text is kept
