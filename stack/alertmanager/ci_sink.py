"""CI stand-in for the people Alertmanager notifies (stack/ci.yml only, never in production).

Receives what the real receivers would: the chat webhook and the heartbeat over HTTP on
:9099 (paths /chat and /heartbeat), and e-mail over plain SMTP on :2525. Prints one JSON
line per notification on stdout, with the time it arrived, so the stack test and the drills
read them with `docker logs`:

    {"at": 1764166000.12, "via": "chat", "status": "firing", "alertname": "PostgresDown", "to": ""}

Standard library only: it runs on the local Python base image.
"""

import email
import http.server
import json
import os
import re
import socketserver
import sys
import threading
import time

# "[FIRING:1] PostgresDown (...)": the default title of Slack messages and e-mail subjects.
TITLE = re.compile(r"\[(FIRING|RESOLVED)(?::\d+)?\] (\S+)")


def record(via: str, status: str, alertname: str, to: str = "") -> None:
    """Print one notification as a JSON line."""
    line = {"at": round(time.time(), 3), "via": via, "status": status.lower(), "alertname": alertname, "to": to}
    print(json.dumps(line), flush=True)


def record_title(via: str, title: str, to: str = "") -> None:
    """Record a notification from its title; an unexpected title is kept whole."""
    match = TITLE.search(title or "")
    record(via, *(match.groups() if match else ("unknown", title)), to=to)


class WebhookHandler(http.server.BaseHTTPRequestHandler):
    """/chat takes Slack's format, /heartbeat Alertmanager's webhook format."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/chat":
            for attachment in body.get("attachments", []):
                record_title("chat", attachment.get("title", ""))
        elif self.path == "/heartbeat":
            record("heartbeat", body.get("status", ""), body.get("groupLabels", {}).get("alertname", ""))
        else:
            self.send_error(404)
            return
        # Alertmanager's Slack notifier wants Slack's own answer: 200 with the body "ok".
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        """Only notifications go to stdout."""


class SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for Alertmanager's client: no TLS, no authentication."""

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self):
        self.reply("220 alert-sink ESMTP")
        recipients = []
        while line := self.rfile.readline().decode(errors="replace").strip():
            verb = line[:4].upper()
            if verb == "QUIT":
                self.reply("221 bye")
                return
            if verb == "RCPT":
                recipients.append(line.split(":", 1)[1].strip(" <>"))
            if verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                self.read_message(recipients)
                recipients = []
            self.reply("250 ok" if verb in {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP"} else "502 no")

    def read_message(self, recipients: list[str]) -> None:
        """Read DATA up to the lone dot; record the message by its subject."""
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        message = email.message_from_bytes(b"".join(lines))
        record_title("email", str(message.get("Subject", "")), to=",".join(recipients))


def main() -> None:
    """Serve SMTP in a thread and HTTP in the main thread (ALERT_SINK_* override for tests)."""
    host = os.environ.get("ALERT_SINK_HOST", "0.0.0.0")
    http_port = int(os.environ.get("ALERT_SINK_HTTP_PORT", "9099"))
    smtp_port = int(os.environ.get("ALERT_SINK_SMTP_PORT", "2525"))
    smtp = socketserver.ThreadingTCPServer((host, smtp_port), SmtpHandler)
    threading.Thread(target=smtp.serve_forever, daemon=True).start()
    print(f"alert sink: HTTP {host}:{http_port} (/chat, /heartbeat), SMTP :{smtp_port}", file=sys.stderr, flush=True)
    http.server.ThreadingHTTPServer((host, http_port), WebhookHandler).serve_forever()


if __name__ == "__main__":
    main()
