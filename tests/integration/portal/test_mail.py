"""services/mail.py: SMTP to a real (minimal) SMTP server on loopback, the .eml outbox, and the dropped-mail log."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
from pathlib import Path
from types import SimpleNamespace

import pytest

from keystile.services import mail
from keystile.settings import Settings


class SmtpPeer:
    """Just enough RFC 5321 for smtplib: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT. Records what it got."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.auth: list[str] = []
        self.messages: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 peer ESMTP\r\n")
        while True:
            line = (await reader.readline()).decode().rstrip("\r\n")
            if not line:
                break
            verb = line.split(" ", 1)[0].upper()
            self.commands.append(verb)
            if verb == "EHLO":
                writer.write(b"250-peer\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
            elif verb == "AUTH":
                self.auth.append(base64.b64decode(line.split(" ")[2]).decode())
                writer.write(b"235 ok\r\n")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                writer.write(b"250 ok\r\n")
            elif verb == "DATA":
                writer.write(b"354 go\r\n")
                await writer.drain()
                data = b""
                while True:
                    chunk = await reader.readline()
                    if chunk == b".\r\n":
                        break
                    data += chunk
                self.messages.append(data)
                writer.write(b"250 queued\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"502 no\r\n")
            await writer.drain()
        writer.close()


def runtime_with(**settings: object) -> mail.Runtime:
    return SimpleNamespace(settings=Settings(**settings))  # type: ignore[return-value]


async def test_smtp_transport_delivers_with_auth():
    peer = SmtpPeer()
    port = await peer.start()
    try:
        rt = runtime_with(smtp_url=f"smtp://mailer:s%40cret@127.0.0.1:{port}?from=portal@example.com")
        message = mail.verification_mail("Dev Portal", "https://portal.example.com", "jane@example.com", "Jane", "t-1")
        await mail.send(rt, message)
    finally:
        await peer.stop()
    assert "AUTH" in peer.commands and "DATA" in peer.commands
    assert peer.auth == ["\0mailer\0s@cret"]
    [raw] = peer.messages
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["From"] == "portal@example.com"
    assert parsed["To"] == "jane@example.com"
    assert parsed["Subject"] == "Confirm your email for Dev Portal"
    assert "https://portal.example.com/verify-email?token=t-1" in parsed.get_content()


async def test_smtp_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture):
    peer = SmtpPeer()
    port = await peer.start()
    await peer.stop()  # nothing listens there now
    rt = runtime_with(smtp_url=f"smtp://127.0.0.1:{port}")
    with caplog.at_level("ERROR", logger="keystile.services.mail"):
        await mail.send(rt, mail.reset_mail("P", "https://p.example.com", "a@example.com", "A", "secret-token"))
    assert any("was not sent" in r.getMessage() for r in caplog.records)
    assert all("secret-token" not in r.getMessage() for r in caplog.records)


async def test_outbox_writes_one_rfc5322_file_per_mail(tmp_path: Path):
    rt = runtime_with(mail_outbox=tmp_path / "box", public_url="https://portal.example.com")
    await mail.send(rt, mail.existing_account_mail("P", "https://portal.example.com", "a@example.com", "A"))
    await mail.send(rt, mail.reset_mail("P", "https://portal.example.com", "b@example.com", "B", "tok"))
    files = sorted((tmp_path / "box").glob("*.eml"))
    assert len(files) == 2
    assert not list((tmp_path / "box").glob(".mail-*"))  # no temporary files left
    parsed = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    assert {m["To"] for m in parsed} == {"a@example.com", "b@example.com"}
    for m in parsed:
        assert m["Message-ID"] and m["Date"]
        assert m["From"] == "keystile <no-reply@portal.example.com>"


async def test_no_transport_logs_a_dropped_mail(caplog: pytest.LogCaptureFixture):
    rt = runtime_with()
    with caplog.at_level("WARNING", logger="keystile.services.mail"):
        await mail.send(rt, mail.reset_mail("P", "https://p.example.com", "someone@example.com", "S", "tok-123"))
    [record] = [r for r in caplog.records if r.name == "keystile.services.mail"]
    assert "dropped" in record.getMessage()
    assert "KEYSTILE_MAIL_OUTBOX" in record.getMessage()
    assert "tok-123" not in record.getMessage() and "someone@" not in record.getMessage()
