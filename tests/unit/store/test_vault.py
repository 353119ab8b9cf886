import base64
import os
import stat

import pytest

from keystile.domain.errors import ConfigurationError, VaultError
from keystile.settings import Settings
from keystile.store.vault import KEY_FILE_NAME, Vault, load_vault

KEY = os.urandom(32)


def test_round_trip_and_binding_to_table_row_and_field():
    vault = Vault(KEY)
    token = vault.encrypt("s3cret", table="dcr_providers", row_id="r1", field="dcr_token")
    assert "s3cret" not in token
    assert token.startswith(f"ks1:{vault.current_id}:")
    assert vault.decrypt(token, table="dcr_providers", row_id="r1", field="dcr_token") == "s3cret"
    for table, row, field in (
        ("other", "r1", "dcr_token"),
        ("dcr_providers", "r2", "dcr_token"),
        ("dcr_providers", "r1", "api_key"),
    ):
        with pytest.raises(VaultError, match="does not decrypt"):
            vault.decrypt(token, table=table, row_id=row, field=field)


def test_nonce_is_fresh_each_time():
    vault = Vault(KEY)
    a = vault.encrypt("x", table="t", row_id=1, field="f")
    b = vault.encrypt("x", table="t", row_id=1, field="f")
    assert a != b


def test_old_keys_decrypt_new_key_encrypts():
    old = Vault(KEY)
    token = old.encrypt("v", table="t", row_id=1, field="f")
    new_key = os.urandom(32)
    rotated = Vault(new_key, [KEY])
    assert rotated.decrypt(token, table="t", row_id=1, field="f") == "v"
    assert rotated.needs_reencryption(token)
    assert not rotated.needs_reencryption(rotated.encrypt("v", table="t", row_id=1, field="f"))
    with pytest.raises(VaultError, match="KEYSTILE_OLD_SECRET_KEYS"):
        Vault(new_key).decrypt(token, table="t", row_id=1, field="f")


def test_tampered_or_garbage_ciphertext():
    vault = Vault(KEY)
    token = vault.encrypt("v", table="t", row_id=1, field="f")
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(VaultError):
        vault.decrypt(flipped, table="t", row_id=1, field="f")
    with pytest.raises(VaultError, match="not a vault ciphertext"):
        vault.decrypt("plain", table="t", row_id=1, field="f")


def test_dev_key_generated_once_with_mode_0600(tmp_path, caplog):
    settings = Settings(data_dir=tmp_path)
    v1 = load_vault(settings)
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "generated a secret key" in caplog.text
    assert base64.b64decode(path.read_text()) != b""
    v2 = load_vault(settings)
    assert v1.current_id == v2.current_id


def test_no_key_outside_dev_mode_is_refused(tmp_path):
    settings = Settings(data_dir=tmp_path, public_url="https://portal.example.com")
    with pytest.raises(ConfigurationError, match="KEYSTILE_SECRET_KEY is required"):
        load_vault(settings)
    assert not (tmp_path / KEY_FILE_NAME).exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("changeme", "placeholder"),
        ("not base64!", "not valid base64"),
        (base64.b64encode(b"short").decode(), "32 bytes"),
    ],
)
def test_bad_keys_are_refused_with_a_reason(tmp_path, value, message):
    settings = Settings(data_dir=tmp_path, secret_key=value)
    with pytest.raises(ConfigurationError, match=message):
        settings.check()
