// fed_common.wgsl: the federated round's scalars (see federated::FedUniform), written before
// each client's end and before the server step.
struct Fed {
    weight: f32,        // this client's aggregation weight (its samples; 1 for SCAFFOLD)
    inv_total: f32,     // 1 / the sum of the round's weights
    client_scale: f32,  // SCAFFOLD: 1 / (local steps * local lr)
    slot: u32,          // SCAFFOLD: the client's index (its control variate's row)
}
