//! `sshield code` and `sshield qr`: show what a user's app shows, for testing and new phones.

use sshield_core::record::TokenKind;
use sshield_otp::{hotp, totp};

use super::{key_uri, pick, user_name, Context};
use crate::cli::QrImages;
use crate::failure::Failure;
use crate::qr;

/// Prints the current TOTP code, or the next HOTP code (without using it up).
pub(crate) fn code(ctx: &Context, user: &str, name: Option<&str>) -> Result<(), Failure> {
    let user = user_name(user)?;
    let record = ctx.record(&user)?;
    let auth = pick(&record, name)?;
    let code = match auth.kind {
        TokenKind::Totp => totp(&auth.secret, &auth.totp_params(), ctx.now.0),
        TokenKind::Hotp => {
            let usage = record.token_usage(&auth.name);
            let next = usage
                .next_counter
                .unwrap_or(0)
                .max(auth.counter.unwrap_or(0));
            hotp(&auth.secret, &auth.hotp_params(), next)
        }
    };
    println!("{}", code.as_str());
    Ok(())
}

/// Prints the QR code and Key URI again, and writes images if asked.
pub(crate) fn qr(
    ctx: &Context,
    user: &str,
    name: Option<&str>,
    issuer: Option<&str>,
    images: &QrImages,
) -> Result<(), Failure> {
    let user = user_name(user)?;
    let record = ctx.record(&user)?;
    let auth = pick(&record, name)?;
    let usage = record.token_usage(&auth.name);
    let next = usage
        .next_counter
        .unwrap_or(0)
        .max(auth.counter.unwrap_or(0));
    let uri = key_uri(user.as_str(), &ctx.issuer(issuer), auth, next)?.to_uri();
    qr::ImageFiles::create(images)?.write(&uri)?;
    println!("{}", qr::terminal(&uri)?);
    println!("Key URI: {}", uri.as_str());
    Ok(())
}
