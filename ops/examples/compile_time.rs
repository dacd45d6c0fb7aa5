//! How long the adapter takes to compile each WGSL file: pipeline creation and the first
//! dispatch (lavapipe/llvmpipe compile a kernel when it first runs), then a second
//! dispatch for comparison. For kernel work together with `OPS_DUMP_WGSL=DIR`, which
//! writes every kernel the engine builds:
//!
//! ```text
//! OPS_DUMP_WGSL=/tmp/k ./target/release/examples/kernel_profile mlp
//! MESA_SHADER_CACHE_DISABLE=true ./target/release/examples/compile_time /tmp/k/*.wgsl
//! ```
//!
//! Each storage binding the kernel uses gets an 8 MiB buffer, each uniform 256 bytes; one
//! workgroup is dispatched.

fn main() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: single-threaded at this point; only EGL reads it.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", "/tmp") };
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("an adapter");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("a device");
    println!("{}", adapter.get_info().name);
    let buffer = |size: u64, usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        })
    };
    let storage: Vec<_> = (0..8)
        .map(|_| buffer(8 << 20, wgpu::BufferUsages::STORAGE))
        .collect();
    let uniform = buffer(256, wgpu::BufferUsages::UNIFORM);
    for path in std::env::args().skip(1) {
        let source = std::fs::read_to_string(&path).expect("readable WGSL file");
        let started = std::time::Instant::now();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(source.as_str().into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let created = started.elapsed().as_secs_f64();
        let entries: Vec<wgpu::BindGroupEntry<'_>> = used_bindings(&source)
            .into_iter()
            .map(|(binding, is_uniform)| wgpu::BindGroupEntry {
                binding,
                resource: if is_uniform {
                    uniform.as_entire_binding()
                } else {
                    storage[binding as usize % storage.len()].as_entire_binding()
                },
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut runs = [0.0; 2];
        for run in &mut runs {
            let started = std::time::Instant::now();
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
            queue.submit([encoder.finish()]);
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("device alive");
            *run = started.elapsed().as_secs_f64();
        }
        println!(
            "{path}: create {:.0} ms, first dispatch {:.0} ms, second {:.1} ms",
            created * 1e3,
            runs[0] * 1e3,
            runs[1] * 1e3
        );
    }
}

/// `(binding, is_uniform)` of each `@group(0)` variable the source mentions outside its
/// declaration (the automatic layout leaves unused ones out).
fn used_bindings(source: &str) -> Vec<(u32, bool)> {
    let mut used = Vec::new();
    for line in source.lines() {
        let Some(at) = line.find("@binding(") else {
            continue;
        };
        let binding = line[at + 9..]
            .split(')')
            .next()
            .and_then(|n| n.parse().ok());
        let name = line
            .split('>')
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .map(str::trim);
        if let (Some(binding), Some(name)) = (binding, name)
            && (source.contains(&format!("{name}[")) || source.contains(&format!("{name}.")))
        {
            used.push((binding, line.contains("uniform")));
        }
    }
    used
}
