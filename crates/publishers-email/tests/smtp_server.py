"""A real SMTP server on loopback for the e-mail publisher's test: aiosmtpd (PyPI).

Usage: smtp_server.py PORT MODE CERT KEY OUTDIR USER PASSWORD
MODE is `starttls` (STARTTLS required) or `implicit` (TLS from the first byte). AUTH PLAIN and
LOGIN are offered after TLS only, for USER with PASSWORD. Each message received is written as
OUTDIR/NNN.json (its headers, parts, envelope and session) before the server answers 250, so the
client's successful send means the file is there. Prints `ready` once it accepts connections,
and stops on SIGTERM.
"""

import email
import email.policy
import json
import pathlib
import signal
import ssl
import sys
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, mode, cert, key, outdir, user, password = sys.argv[1:]
# aiosmtpd 1.4 warns about its own use of a deprecated session field.
warnings.filterwarnings("ignore", category=DeprecationWarning)


class Handler:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        parts = [
            {"type": part.get_content_type(), "body": part.get_content()}
            for part in message.walk()
            if not part.is_multipart()
        ]
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "authenticated": bool(session.authenticated),
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "content_type": message.get_content_type(),
            "message_id": message["Message-ID"],
            "in_reply_to": message["In-Reply-To"],
            "references": message["References"],
            "subject": message["Subject"],
            "date": message["Date"],
            "parts": parts,
        }
        path = pathlib.Path(outdir) / f"{self.count:03}.json"
        path.write_text(json.dumps(record))
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok, handled=False)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
# With implicit TLS aiosmtpd does not know the connection is encrypted (it tracks STARTTLS only),
# so it must not hold AUTH back until a STARTTLS that never comes.
options = dict(
    hostname="127.0.0.1",
    port=int(port),
    authenticator=authenticator,
    auth_require_tls=(mode == "starttls"),
)
if mode == "starttls":
    controller = Controller(Handler(), tls_context=context, require_starttls=True, **options)
else:
    controller = Controller(Handler(), ssl_context=context, **options)
controller.start()
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
controller.stop()
