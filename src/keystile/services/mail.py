"""Outgoing mail. One of three transports, chosen from the settings at send time:

1. `KEYSTILE_SMTP_URL` set: SMTP through the standard library (run in a worker thread).
   `smtp://[user[:password]@]host[:port]` (STARTTLS when the server offers it; `?starttls=false` to skip),
   `smtps://…` (implicit TLS, port 465 by default). `?from=portal@example.com` sets the sender.
2. Else `KEYSTILE_MAIL_OUTBOX=<folder>`: each mail is written there as one RFC 5322 `.eml` file (the demo and
   the tests read it).
3. Else a log line says that a mail was dropped and why (never its links: they hold one-time tokens).

Links in mails start at the portal's base URL (its `custom_domain`, else `KEYSTILE_PUBLIC_URL`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import ssl
import tempfile
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from keystile.domain.errors import ConfigurationError
from keystile.services.context import Runtime

__all__ = [
    "Mail",
    "existing_account_mail",
    "render",
    "reset_mail",
    "send",
    "verification_mail",
]

log = logging.getLogger(__name__)
SMTP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    kind: str  # what the mail is for (logged when it is dropped)


def _sender(runtime: Runtime) -> str:
    if runtime.settings.smtp_url:
        sender = parse_qs(urlsplit(runtime.settings.smtp_url).query).get("from")
        if sender:
            return sender[0]
    host = urlsplit(runtime.settings.public_url).hostname or "localhost"
    if host.replace(".", "").isdigit() or host == "localhost" or ":" in host:
        host = "keystile.localhost"
    return f"keystile <no-reply@{host}>"


def render(runtime: Runtime, mail: Mail) -> EmailMessage:
    """The RFC 5322 message for a mail."""
    msg = EmailMessage()
    sender = _sender(runtime)
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    domain = sender.rsplit("@", 1)[-1].rstrip(">")
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["X-Keystile-Mail"] = mail.kind
    msg.set_content(mail.text)
    return msg


async def send(runtime: Runtime, mail: Mail) -> None:
    """Deliver a mail through the configured transport. Failures are logged, never raised: the caller's
    change is committed and an answer must not reveal whether a mail went out (no account enumeration).
    """
    settings = runtime.settings
    try:
        if settings.smtp_url:
            await asyncio.to_thread(_send_smtp, settings.smtp_url, render(runtime, mail))
            return
        if settings.mail_outbox is not None:
            await asyncio.to_thread(_write_eml, Path(settings.mail_outbox), render(runtime, mail))
            return
    except (OSError, smtplib.SMTPException, ConfigurationError) as exc:
        log.error("mail %s to %s was not sent: %s", mail.kind, _mask(mail.to), exc.__class__.__name__)
        return
    log.warning(
        "mail %s to %s dropped: neither KEYSTILE_SMTP_URL nor KEYSTILE_MAIL_OUTBOX is set",
        mail.kind,
        _mask(mail.to),
    )


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}…@{domain}"


def _write_eml(folder: Path, msg: EmailMessage) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{formatdate(usegmt=True)[5:25].replace(' ', '-').replace(':', '')}-{uuid.uuid4().hex}.eml"
    data = msg.as_bytes()
    # write then rename, so a reader never sees half a mail
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mail-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _send_smtp(url: str, msg: EmailMessage) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigurationError("KEYSTILE_SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465")
    query = parse_qs(parts.query)
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=SMTP_TIMEOUT, context=context)
    else:
        client = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=SMTP_TIMEOUT)
    with client:
        client.ehlo()
        if (
            parts.scheme == "smtp"
            and query.get("starttls", ["true"])[0].lower() != "false"
            and client.has_extn("starttls")
        ):
            client.starttls(context=context)
            client.ehlo()
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(msg)


# ---- the mails -------------------------------------------------------------------------------------------


def verification_mail(portal_name: str, base_url: str, to: str, full_name: str, token: str) -> Mail:
    link = f"{base_url}/verify-email?token={quote(token)}"
    text = (
        f"Hello {full_name},\n\n"
        f"Confirm your email address to finish signing up to {portal_name}:\n\n{link}\n\n"
        "The link is valid for 24 hours. If you did not sign up, ignore this mail.\n"
    )
    return Mail(to, f"Confirm your email for {portal_name}", text, "verify_email")


def existing_account_mail(portal_name: str, base_url: str, to: str, full_name: str) -> Mail:
    text = (
        f"Hello {full_name},\n\n"
        f"Someone tried to sign up to {portal_name} with this address, but you already have an account.\n"
        f"Sign in at {base_url}/login, or reset your password at {base_url}/forgot-password.\n\n"
        "If this was not you, ignore this mail; nothing has changed.\n"
    )
    return Mail(to, f"You already have an account on {portal_name}", text, "existing_account")


def reset_mail(portal_name: str, base_url: str, to: str, full_name: str, token: str) -> Mail:
    link = f"{base_url}/reset-password?token={quote(token)}"
    text = (
        f"Hello {full_name},\n\n"
        f"Set a new password for {portal_name}:\n\n{link}\n\n"
        "The link is valid for 1 hour. If you did not ask for it, ignore this mail.\n"
    )
    return Mail(to, f"Reset your {portal_name} password", text, "reset_password")
