//! Reading a data file into memory, decompressing gzip when the bytes say so.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::error::DataError;

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads `file` whole; if it is gzip (detected by its magic bytes, not its name),
/// returns the decompressed bytes. Missing, unreadable, empty and truncated files
/// become errors naming the file.
pub(crate) fn read_bytes(file: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(file).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing {
            file: file.to_path_buf(),
        },
        _ => DataError::Io {
            file: file.to_path_buf(),
            source,
        },
    })?;
    if raw.is_empty() {
        return Err(empty(file, "it has 0 bytes"));
    }
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let bytes = gunzip(file, &raw)?;
    if bytes.is_empty() {
        return Err(empty(file, "it decompresses to 0 bytes"));
    }
    Ok(bytes)
}

/// Decompresses a whole (possibly multi-member) gzip stream.
pub(crate) fn gunzip(file: &Path, raw: &[u8]) -> Result<Vec<u8>, DataError> {
    let mut bytes = Vec::with_capacity(raw.len().saturating_mul(4));
    MultiGzDecoder::new(raw)
        .read_to_end(&mut bytes)
        .map_err(|error| DataError::Gzip {
            file: file.to_path_buf(),
            detail: error.to_string(),
        })?;
    Ok(bytes)
}

pub(crate) fn empty(file: &Path, detail: &str) -> DataError {
    DataError::Empty {
        file: file.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Opens a file, gunzipping it when its bytes say gzip (as the data stages do).
pub(crate) fn open(path: &Path) -> Result<Box<dyn Read>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let mut reader = BufReader::new(file);
    let gzip = reader
        .fill_buf()
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?
        .starts_with(&[0x1f, 0x8b]);
    if gzip {
        Ok(Box::new(flate2::read::GzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder
            .write_all(bytes)
            .expect("writing to a Vec cannot fail");
        encoder.finish().expect("writing to a Vec cannot fail")
    }

    #[test]
    fn gunzip_round_trips() {
        let text = b"1,2,3\n4,5,6\n".repeat(100);
        let packed = gzip(&text);
        assert_eq!(gunzip(Path::new("x.gz"), &packed).unwrap(), text);
    }

    #[test]
    fn truncated_gzip_is_an_error_naming_the_file() {
        let packed = gzip(&b"1,2,3\n4,5,6\n".repeat(100));
        for cut in [3, 10, packed.len() / 2, packed.len() - 1] {
            let error = gunzip(Path::new("cut.csv.gz"), &packed[..cut]).unwrap_err();
            assert!(
                matches!(error, DataError::Gzip { .. }),
                "cut {cut}: {error}"
            );
            assert!(error.to_string().contains("cut.csv.gz"), "{error}");
        }
    }

    #[test]
    fn missing_file_is_named() {
        let error = read_bytes(Path::new("no/such/file.csv")).unwrap_err();
        assert!(matches!(error, DataError::Missing { .. }));
        assert!(error.to_string().contains("no/such/file.csv"), "{error}");
    }
}
