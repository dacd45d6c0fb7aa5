//! Text helpers shared by the HTML and SVG writers: escaping and number formatting.

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A number with about four significant digits, in scientific notation when very
/// small or large: `0.3625`, `1245`, `3e-3`, `NaN`.
pub fn short_number(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "NaN".into()
        } else if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if value == 0.0 {
        return "0".into();
    }
    let magnitude = value.abs().log10().floor() as i32;
    if !(-3..5).contains(&magnitude) {
        return scientific(value, 3);
    }
    let decimals = (3 - magnitude).clamp(0, 6) as usize;
    trim_zeros(format!("{value:.decimals$}"))
}

/// A tick label: as many decimals as the tick spacing `step` needs.
pub fn tick_label(value: f64, step: f64) -> String {
    if value == 0.0 || !value.is_finite() || !step.is_finite() || step <= 0.0 {
        return short_number(value);
    }
    let step_magnitude = step.log10().floor() as i32;
    let magnitude = value.abs().log10().floor() as i32;
    if magnitude >= 5 || step_magnitude < -4 {
        let digits = (magnitude - step_magnitude).max(0) as usize;
        return scientific(value, digits);
    }
    let decimals = (-step_magnitude).max(0) as usize;
    trim_zeros(format!("{value:.decimals$}"))
}

/// `2.5e-3`: `digits` decimals in the mantissa, trailing zeros removed.
fn scientific(value: f64, digits: usize) -> String {
    let text = format!("{value:.digits$e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => format!("{}e{exponent}", trim_zeros(mantissa.to_string())),
        None => text,
    }
}

fn trim_zeros(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(short_number(0.36251), "0.3625");
        assert_eq!(short_number(1245.3), "1245");
        assert_eq!(short_number(0.003), "0.003");
        assert_eq!(short_number(5.6e-9), "5.6e-9");
        assert_eq!(short_number(f64::NAN), "NaN");
        assert_eq!(tick_label(0.0015000000000000002, 0.0005), "0.0015");
        assert_eq!(tick_label(600.0, 200.0), "600");
        assert_eq!(tick_label(2.5e-5, 5e-6), "2.5e-5");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
