//! Range rules a registry member states about its own settings: each says where (a key
//! of the settings), whether it holds, what was expected, what was found, and a hint.
//! `engine validate` turns the broken ones into located `invalid-hyperparameter`
//! diagnostics.

/// One range rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// The key inside the member's settings, e.g. `"gamma"` or `"betas.1"`.
    pub key: String,
    pub ok: bool,
    /// E.g. `"in (0, 1]"`.
    pub expected: String,
    pub found: String,
    pub hint: String,
}

/// The rules of one member's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds(pub Vec<Bound>);

impl Bounds {
    /// Adds a rule about the value at `key`.
    pub fn rule(
        &mut self,
        key: &str,
        ok: bool,
        expected: &str,
        found: impl ToString,
        hint: &str,
    ) -> &mut Self {
        self.0.push(Bound {
            key: key.to_string(),
            ok,
            expected: expected.to_string(),
            found: found.to_string(),
            hint: hint.to_string(),
        });
        self
    }

    /// Adds the rules of a nested member's settings, under `key`.
    pub fn nest(&mut self, key: &str, inner: Bounds) -> &mut Self {
        for b in inner.0 {
            self.0.push(Bound {
                key: format!("{key}.{}", b.key),
                ..b
            });
        }
        self
    }
}
