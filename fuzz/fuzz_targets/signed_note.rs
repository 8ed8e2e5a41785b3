//! Checkpoints and signed notes (crates/lexecon-ledger, note.rs) on arbitrary input. The
//! first byte picks a mode:
//! - even: the rest, as text, is a note verified by a fixed key (as a checkpoint and as
//!   any note), also read as a bare checkpoint body and as a `vkey`. Nothing panics; a
//!   note that verifies has a body that ends in a newline and starts with the
//!   checkpoint's own body; a body that parses writes back as its first three lines; a
//!   vkey that parses writes back as itself.
//! - odd: a checkpoint of a size and root from the rest is signed with the fixed key;
//!   it verifies to the same checkpoint, and no single-byte change of the note does.
#![no_main]

use ed25519_dalek::SigningKey;
use lexecon_ledger::{Checkpoint, CheckpointSigner, NoteVerifier};
use libfuzzer_sys::fuzz_target;

/// The origin and key of the ledger crate's documented example checkpoint
/// (crates/lexecon-ledger/src/tests.rs), so that seed verifies.
const ORIGIN: &str = "lexecon.test/log";

fn signer() -> CheckpointSigner {
    CheckpointSigner::new(ORIGIN, SigningKey::from_bytes(&[7u8; 32]))
        .expect("the fixed origin is a valid key name")
}

fn decode_only(verifier: &NoteVerifier, text: &str) {
    if let Ok(checkpoint) = verifier.verify(text) {
        assert_eq!(checkpoint.origin, verifier.name());
        let body = verifier
            .verify_text(text)
            .expect("a checkpoint note is a note");
        assert!(
            body.starts_with(&checkpoint.body()),
            "the checkpoint is not its body's first lines"
        );
    }
    if let Ok(body) = verifier.verify_text(text) {
        assert!(body.ends_with('\n'));
        assert!(text.starts_with(body));
    }
    if let Ok(checkpoint) = Checkpoint::parse_body(text) {
        let written = checkpoint.body();
        assert!(
            text.starts_with(&written),
            "checkpoint body {text:?} writes back as {written:?}"
        );
        assert_eq!(Checkpoint::parse_body(&written), Ok(checkpoint));
    }
    if let Ok(v) = NoteVerifier::from_vkey(text) {
        assert_eq!(
            v.vkey(),
            text.trim(),
            "a vkey does not write back as itself"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let signer = signer();
    let verifier = signer.verifier();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        decode_only(&verifier, &String::from_utf8_lossy(rest));
        return;
    }
    // size (8 bytes), root (32 bytes), then where to change the note and to what.
    let Some((size, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let Some((root, rest)) = rest.split_first_chunk::<32>() else {
        return;
    };
    let signed = signer
        .sign(u64::from_le_bytes(*size), *root)
        .expect("an Ed25519-only signer signs");
    assert_eq!(verifier.verify(&signed.note), Ok(signed.checkpoint.clone()));
    decode_only(&verifier, &signed.note);
    let Some((at, rest)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let Some(&byte) = rest.first() else {
        return;
    };
    let at = usize::from(u16::from_le_bytes(*at)) % signed.note.len();
    let mut bytes = signed.note.clone().into_bytes();
    if let Some(b) = bytes.get_mut(at)
        && *b != byte
    {
        *b = byte;
        if let Ok(changed) = String::from_utf8(bytes) {
            assert!(
                verifier.verify(&changed).is_err(),
                "a note changed at byte {at} still verifies: {changed:?}"
            );
        }
    }
});
