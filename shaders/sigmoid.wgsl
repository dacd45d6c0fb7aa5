// sigmoid: y = 1 / (1 + exp(-x)); dx = dy y (1 - y).
fn act_forward(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn act_backward(x: f32, y: f32, dy: f32) -> f32 { return dy * y * (1.0 - y); }
