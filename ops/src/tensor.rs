//! A plain CPU tensor: row-major `f32` data with a shape. The batch, when present, is the
//! leading dimension.

/// A dense row-major tensor on the CPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major elements; `data.len() == shape.iter().product()`.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// A tensor filled with `value`.
    pub fn filled(shape: &[usize], value: f32) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: vec![value; shape.iter().product()],
        }
    }

    /// Wraps `data` with `shape`. Returns `None` when the element count does not match.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Option<Tensor> {
        (shape.iter().product::<usize>() == data.len()).then(|| Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The leading (batch) dimension, or 1 for a scalar.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// The shape without the leading batch dimension.
    pub fn sample_shape(&self) -> &[usize] {
        self.shape.get(1..).unwrap_or(&[])
    }

    /// Same data, new shape (element counts must agree).
    pub fn reshaped(mut self, shape: &[usize]) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), self.data.len());
        self.shape = shape.to_vec();
        self
    }

    /// Largest absolute element-wise difference, scaled by `max(1, max|other|)`.
    pub fn rel_max_diff(&self, other: &Tensor) -> f32 {
        rel_max_diff(&self.data, &other.data)
    }
}

/// `max |a-b| / max(1, max |b|)`; infinity when lengths differ or any element is not finite.
pub fn rel_max_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    let mut diff = 0.0f32;
    let mut scale = 1.0f32;
    for (&x, &y) in a.iter().zip(b) {
        if !x.is_finite() || !y.is_finite() {
            return f32::INFINITY;
        }
        diff = diff.max((x - y).abs());
        scale = scale.max(y.abs());
    }
    diff / scale
}
