// swish: y = x sigmoid(beta x); dy/dx = s + beta x s (1 - s), s = sigmoid(beta x).
fn swish_sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}
fn act_forward(x: f32) -> f32 {
    let beta = bitcast<f32>({{BETA}}u);
    return x * swish_sigmoid(beta * x);
}
fn act_backward(x: f32, y: f32, dy: f32) -> f32 {
    let beta = bitcast<f32>({{BETA}}u);
    let s = swish_sigmoid(beta * x);
    return dy * (s + beta * x * s * (1.0 - s));
}
