// relu: y = max(x, 0); dx = dy where x > 0.
fn act_forward(x: f32) -> f32 { return max(x, 0.0); }
fn act_backward(x: f32, y: f32, dy: f32) -> f32 { return select(0.0, dy, x > 0.0); }
