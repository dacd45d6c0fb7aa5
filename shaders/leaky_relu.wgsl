// leaky_relu: y = x for x > 0, slope * x otherwise. {{SLOPE}} is an f32 bit pattern.
fn act_forward(x: f32) -> f32 { return select(bitcast<f32>({{SLOPE}}u) * x, x, x > 0.0); }
fn act_backward(x: f32, y: f32, dy: f32) -> f32 {
    return select(bitcast<f32>({{SLOPE}}u) * dy, dy, x > 0.0);
}
