// gelu, tanh approximation: y = 0.5 x (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi).
const GELU_C: f32 = 0.7978845608028654;
fn act_forward(x: f32) -> f32 {
    return 0.5 * x * (1.0 + tanh_safe(GELU_C * (x + 0.044715 * x * x * x)));
}
fn act_backward(x: f32, y: f32, dy: f32) -> f32 {
    let t = tanh_safe(GELU_C * (x + 0.044715 * x * x * x));
    let dt = GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dt);
}
