// tanh: dx = dy (1 - y^2).
fn act_forward(x: f32) -> f32 { return tanh_safe(x); }
fn act_backward(x: f32, y: f32, dy: f32) -> f32 { return dy * (1.0 - y * y); }
