//! Photo fixtures for issue reports: small JPEG/PNG/WebP files that carry
//! EXIF (with GPS), text chunks or an orientation tag, a decompression bomb,
//! and `has_exif_or_gps` to check that processed photos carry none of it.
//!
//! Written once and shared: the HTTP tests use it as `crate::photos_fixtures`,
//! and `server/photos.rs` includes this same file in its unit tests (`#[path]`),
//! so it may depend on the `image` crate and std only.
#![allow(dead_code)]

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage, RgbaImage};

/// Written into every GPS block and text chunk of these fixtures. Random
/// compressed bytes contain "GPS" by chance now and then; this string, never.
pub const GPS_SENTINEL: &[u8] = b"HEROLD-GPS-53.8925N-11.4647E";

/// A picture whose left half is red and right half blue, so a test can tell
/// which way it was turned.
pub fn two_tone(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, _| if x < w / 2 { image::Rgb([220, 20, 20]) } else { image::Rgb([20, 20, 220]) })
}

/// A plain JPEG without metadata.
pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(two_tone(w, h).as_raw(), w, h, ExtendedColorType::Rgb8)
        .expect("encode jpeg");
    out
}

/// A plain PNG without metadata.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out).write_image(two_tone(w, h).as_raw(), w, h, ExtendedColorType::Rgb8).expect("encode png");
    out
}

/// A fully transparent RGBA PNG (its colour channels are black).
pub fn png_transparent(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let img = RgbaImage::from_pixel(w, h, image::Rgba([0, 0, 0, 0]));
    PngEncoder::new(&mut out).write_image(img.as_raw(), w, h, ExtendedColorType::Rgba8).expect("encode png");
    out
}

/// A JPEG with an APP1 Exif segment right after SOI: a GPS IFD (latitude,
/// longitude, processing method = `GPS_SENTINEL`).
pub fn jpeg_with_gps(w: u32, h: u32) -> Vec<u8> {
    with_app1_exif(jpeg(w, h), &exif_tiff(None, true))
}

/// A JPEG whose Exif says how to turn it (1..=8; 6 = turn 90° clockwise to show).
pub fn jpeg_with_orientation(w: u32, h: u32, orientation: u16) -> Vec<u8> {
    with_app1_exif(jpeg(w, h), &exif_tiff(Some(orientation), false))
}

/// A PNG with an `eXIf` chunk (GPS IFD) and a `tEXt` comment, both before IDAT.
pub fn png_with_exif(w: u32, h: u32) -> Vec<u8> {
    let png = png(w, h);
    // Signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 CRC).
    let (head, rest) = png.split_at(8 + 25);
    let mut comment = b"Comment\0taken at ".to_vec();
    comment.extend_from_slice(GPS_SENTINEL);
    let mut out = head.to_vec();
    out.extend(png_chunk(b"eXIf", &exif_tiff(None, true)));
    out.extend(png_chunk(b"tEXt", &comment));
    out.extend_from_slice(rest);
    out
}

/// A lossless WebP in an extended (VP8X) container with an `EXIF` chunk (GPS IFD).
pub fn webp_with_exif(w: u32, h: u32) -> Vec<u8> {
    let mut simple = Vec::new();
    WebPEncoder::new_lossless(&mut simple)
        .encode(two_tone(w, h).as_raw(), w, h, ExtendedColorType::Rgb8)
        .expect("encode webp");
    assert_eq!(&simple[..4], b"RIFF");
    assert_eq!(&simple[8..12], b"WEBP");
    let image_chunk = &simple[12..]; // the VP8L chunk, padding included

    const EXIF_FLAG: u8 = 0x08;
    let mut vp8x = vec![EXIF_FLAG, 0, 0, 0];
    vp8x.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(h - 1).to_le_bytes()[..3]);

    let mut body = b"WEBP".to_vec();
    body.extend(riff_chunk(b"VP8X", &vp8x));
    body.extend_from_slice(image_chunk);
    body.extend(riff_chunk(b"EXIF", &exif_tiff(None, true)));
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// A tiny, well-formed PNG claiming 100000 × 100000 pixels (30 GB of RGB).
pub fn png_bomb() -> Vec<u8> {
    png_header_only(100_000, 100_000)
}

/// A valid PNG signature + IHDR (8-bit RGB, correct CRC) for any size, then a
/// tiny IDAT (one zero row) and IEND: the header is all a decoder may read.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, adaptive filter, no interlace

    // zlib stream holding one stored block of 4 zero bytes (filter byte + one pixel).
    let raw = [0u8; 4];
    let mut idat = vec![0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff];
    idat.extend_from_slice(&raw);
    idat.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend(png_chunk(b"IDAT", &idat));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// True when `bytes` carry Exif, XMP, IPTC, an ICC profile or text chunks in a
/// JPEG, PNG or WebP container, or the fixtures' GPS sentinel anywhere.
pub fn has_exif_or_gps(bytes: &[u8]) -> bool {
    contains(bytes, GPS_SENTINEL) || contains(bytes, b"Exif\0\0") || !metadata_blocks(bytes).is_empty()
}

/// Names of the metadata blocks found in a JPEG (APPn other than JFIF APP0,
/// COM), PNG (eXIf, tEXt, zTXt, iTXt, iCCP) or WebP (EXIF, XMP, ICCP).
pub fn metadata_blocks(bytes: &[u8]) -> Vec<String> {
    if bytes.starts_with(&[0xff, 0xd8]) {
        jpeg_metadata(bytes)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png_metadata(bytes)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        webp_metadata(bytes)
    } else {
        Vec::new()
    }
}

fn jpeg_metadata(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 2;
    // Marker segments up to the first SOS; the entropy-coded data follows it.
    while i + 4 <= bytes.len() && bytes[i] == 0xff {
        let marker = bytes[i + 1];
        if marker == 0xda {
            break;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        let data = &bytes[(i + 4).min(bytes.len())..(i + 2 + len).min(bytes.len())];
        match marker {
            0xe0 if data.starts_with(b"JFIF\0") => {}
            0xe0..=0xef => found.push(format!("APP{}", marker - 0xe0)),
            0xfe => found.push("COM".to_owned()),
            _ => {}
        }
        i += 2 + len;
    }
    found
}

fn png_metadata(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 8;
    while i + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        let kind = &bytes[i + 4..i + 8];
        if [&b"eXIf"[..], b"tEXt", b"zTXt", b"iTXt", b"iCCP"].contains(&kind) {
            found.push(String::from_utf8_lossy(kind).into_owned());
        }
        i += 12 + len;
    }
    found
}

fn webp_metadata(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let kind = &bytes[i..i + 4];
        let len = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().unwrap()) as usize;
        if [&b"EXIF"[..], b"XMP ", b"ICCP"].contains(&kind) {
            found.push(String::from_utf8_lossy(kind).trim_end().to_owned());
        }
        i += 8 + len + (len & 1);
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A big-endian TIFF block as Exif stores it: IFD0 with an orientation tag
/// and/or a pointer to a GPS IFD.
fn exif_tiff(orientation: Option<u16>, gps: bool) -> Vec<u8> {
    // Entry: tag, type, count, value-or-offset (4 bytes, left-aligned).
    fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&value);
    }
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const ASCII: u16 = 2;
    const RATIONAL: u16 = 5;
    const UNDEFINED: u16 = 7;

    let ifd0_entries = orientation.is_some() as u16 + gps as u16;
    let ifd0_len = 2 + 12 * ifd0_entries as u32 + 4;
    let gps_ifd_at = 8 + ifd0_len;

    let mut out = b"MM\0\x2a".to_vec();
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend_from_slice(&ifd0_entries.to_be_bytes());
    if let Some(o) = orientation {
        let v = o.to_be_bytes();
        entry(&mut out, 0x0112, SHORT, 1, [v[0], v[1], 0, 0]);
    }
    if gps {
        entry(&mut out, 0x8825, LONG, 1, gps_ifd_at.to_be_bytes());
    }
    out.extend_from_slice(&0u32.to_be_bytes()); // no IFD1
    if !gps {
        return out;
    }

    const GPS_ENTRIES: u16 = 5;
    let data_at = gps_ifd_at + 2 + 12 * GPS_ENTRIES as u32 + 4;
    let lat_at = data_at;
    let lon_at = lat_at + 24;
    let method_at = lon_at + 24;
    let mut method = b"ASCII\0\0\0".to_vec();
    method.extend_from_slice(GPS_SENTINEL);

    out.extend_from_slice(&GPS_ENTRIES.to_be_bytes());
    entry(&mut out, 0x0001, ASCII, 2, *b"N\0\0\0");
    entry(&mut out, 0x0002, RATIONAL, 3, lat_at.to_be_bytes());
    entry(&mut out, 0x0003, ASCII, 2, *b"E\0\0\0");
    entry(&mut out, 0x0004, RATIONAL, 3, lon_at.to_be_bytes());
    entry(&mut out, 0x001b, UNDEFINED, method.len() as u32, method_at.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    // 53° 53' 33" N, 11° 27' 53" E (Wismar market square).
    for (num, den) in [(53u32, 1u32), (53, 1), (33, 1), (11, 1), (27, 1), (53, 1)] {
        out.extend_from_slice(&num.to_be_bytes());
        out.extend_from_slice(&den.to_be_bytes());
    }
    out.extend(method);
    out
}

/// Inserts `APP1 "Exif\0\0" <tiff>` right after the SOI marker.
fn with_app1_exif(jpeg: Vec<u8>, tiff: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(tiff);
    let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
    out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    out.extend(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&out[4..]).to_be_bytes());
    out
}

fn riff_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = kind.to_vec();
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// CRC-32 (ISO 3309) as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}
