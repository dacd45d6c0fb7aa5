//! Fixed-size numeric elements of binary array files (idx, npy), decoded in parallel.

use rayon::prelude::*;

/// Elements converted per rayon task at the least.
const MIN_ELEMENTS_PER_TASK: usize = 1 << 14;

/// The element types binary array formats store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Element {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

/// Byte order of multi-byte elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteOrder {
    Little,
    Big,
}

macro_rules! convert {
    ($bytes:expr, $out:expr, $order:expr, $from:ty, $to:ty) => {{
        const N: usize = std::mem::size_of::<$from>();
        let (words, _) = $bytes.as_chunks::<N>();
        let order = $order;
        $out.par_iter_mut()
            .zip(words.par_iter())
            .with_min_len(MIN_ELEMENTS_PER_TASK)
            .for_each(|(out, word)| {
                let value = match order {
                    ByteOrder::Little => <$from>::from_le_bytes(*word),
                    ByteOrder::Big => <$from>::from_be_bytes(*word),
                };
                *out = value as $to;
            });
    }};
}

macro_rules! decode_into {
    ($name:ident, $to:ty) => {
        /// Decodes every whole element of `bytes` (a trailing partial element is ignored;
        /// callers check sizes first).
        pub(crate) fn $name(self, bytes: &[u8], order: ByteOrder) -> Vec<$to> {
            let mut out: Vec<$to> = vec![0.0; bytes.len() / self.size()];
            match self {
                Element::U8 => convert!(bytes, out, order, u8, $to),
                Element::I8 => convert!(bytes, out, order, i8, $to),
                Element::U16 => convert!(bytes, out, order, u16, $to),
                Element::I16 => convert!(bytes, out, order, i16, $to),
                Element::U32 => convert!(bytes, out, order, u32, $to),
                Element::I32 => convert!(bytes, out, order, i32, $to),
                Element::U64 => convert!(bytes, out, order, u64, $to),
                Element::I64 => convert!(bytes, out, order, i64, $to),
                Element::F32 => convert!(bytes, out, order, f32, $to),
                Element::F64 => convert!(bytes, out, order, f64, $to),
            }
            out
        }
    };
}

impl Element {
    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            Element::U8 | Element::I8 => 1,
            Element::U16 | Element::I16 => 2,
            Element::U32 | Element::I32 | Element::F32 => 4,
            Element::U64 | Element::I64 | Element::F64 => 8,
        }
    }

    decode_into!(decode_f32, f32);
    decode_into!(decode_f64, f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_type_and_order() {
        assert_eq!(
            Element::U8.decode_f32(&[0, 7, 255], ByteOrder::Big),
            [0.0, 7.0, 255.0]
        );
        assert_eq!(Element::I8.decode_f64(&[0xff], ByteOrder::Little), [-1.0]);
        assert_eq!(
            Element::I16.decode_f32(&[0x01, 0x00], ByteOrder::Big),
            [256.0]
        );
        assert_eq!(
            Element::I16.decode_f32(&[0x01, 0x00], ByteOrder::Little),
            [1.0]
        );
        let bytes = (-3i64).to_le_bytes();
        assert_eq!(Element::I64.decode_f64(&bytes, ByteOrder::Little), [-3.0]);
        let bytes = 1.5f64.to_be_bytes();
        assert_eq!(Element::F64.decode_f32(&bytes, ByteOrder::Big), [1.5]);
        let many: Vec<u8> = 0.25f32.to_le_bytes().repeat(100_000);
        let decoded = Element::F32.decode_f32(&many, ByteOrder::Little);
        assert_eq!(decoded.len(), 100_000);
        assert!(decoded.iter().all(|&v| v == 0.25));
    }
}
