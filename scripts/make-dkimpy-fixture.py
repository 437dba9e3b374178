#!/usr/bin/env python3
"""Re-creates the inbound tests' fixture signed by another DKIM implementation (dkimpy, the
Python library behind many milters), so the gateway's verification is checked against a signature it
did not make itself.

    python3 -m venv .venv-dkimpy && .venv-dkimpy/bin/pip install dkimpy
    .venv-dkimpy/bin/python scripts/make-dkimpy-fixture.py tests/fixtures/inbound

Writes `dkimpy-signed.eml` (relaxed/relaxed, rsa-sha256, d=dkimpy.test, s=py) and
`dkimpy-py._domainkey.txt` (the TXT record the test DNS serves). The key is made for the fixture
and thrown away; only its public half is kept.
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import dkim

MESSAGE = (
    b"From: Huisarts De Linde <praktijk@dkimpy.test>\r\n"
    b"To: Afdeling Cardiologie <cardio@zorg.test>\r\n"
    b"Subject: Verwijzing patient 2026-0412\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0100\r\n"
    b"Message-ID: <dkimpy-fixture-1@dkimpy.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Geachte collega,\r\n"
    b"\r\n"
    b"Hierbij de verwijzing. Met vriendelijke groet,\r\n"
    b"Huisartsenpraktijk De Linde\r\n"
)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key.pem"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                       capture_output=True)
        pub = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        private = key.read_bytes()
    sig = dkim.sign(MESSAGE, b"py", b"dkimpy.test", private,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    (out / "dkimpy-signed.eml").write_bytes(sig + MESSAGE)
    import base64
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(pub).decode()
    (out / "dkimpy-py._domainkey.txt").write_text(record + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
