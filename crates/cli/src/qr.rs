//! Drawing a Key URI as a QR code: in the terminal, as PNG, as SVG.

use std::fs::{OpenOptions, Permissions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

use crate::cli::QrImages;
use crate::failure::Failure;

/// Pixels per QR module in PNG output; 8 keeps a 160-bit URI around 400 px wide.
const PNG_SCALE: usize = 8;
/// The blank margin the QR spec requires, in modules.
const QUIET_ZONE: usize = 4;

fn encode(uri: &str) -> Result<QrCode, Failure> {
    // Level M: survives a smudged screen, and the code stays small enough for a terminal.
    QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
        .map_err(|e| Failure::Error(format!("cannot draw a QR code for this URI: {e}")))
}

/// The QR code as half-block characters, two modules per character row.
pub fn terminal(uri: &str) -> Result<String, Failure> {
    // Dark modules drawn as spaces on a light block background scan on both light and dark
    // terminal themes.
    Ok(encode(uri)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Writes the images asked for. Files are created 0600: they contain the secret.
pub fn write_images(uri: &str, images: &QrImages) -> Result<(), Failure> {
    if let Some(path) = &images.qr_png {
        write_private(path, &png(uri)?)?;
    }
    if let Some(path) = &images.qr_svg {
        let svg = encode(uri)?
            .render::<svg::Color<'_>>()
            .min_dimensions(256, 256)
            .quiet_zone(true)
            .build();
        write_private(path, svg.as_bytes())?;
    }
    Ok(())
}

fn png(uri: &str) -> Result<Vec<u8>, Failure> {
    let code = encode(uri)?;
    let modules = code.width();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (mx, my) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
            for y in my * PNG_SCALE..(my + 1) * PNG_SCALE {
                pixels[y * side + mx * PNG_SCALE..y * side + (mx + 1) * PNG_SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let side32 = u32::try_from(side).map_err(|_| Failure::Error("QR code too large".into()))?;
    let mut encoder = png::Encoder::new(&mut out, side32, side32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels))
        .map_err(|e| Failure::Error(format!("cannot encode PNG: {e}")))?;
    Ok(out)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::Error(format!(
            "cannot write {}: {}",
            path.display(),
            sshield_core::store::describe_io(&e)
        ))
    };
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    // `mode` applies only when the file is created: narrow a file that was already there
    // (e.g. 0644) before the secret goes into it.
    file.set_permissions(Permissions::from_mode(0o600))
        .map_err(fail)?;
    let mut w = BufWriter::new(file);
    w.write_all(bytes).and_then(|()| w.flush()).map_err(fail)
}
