//! How long the adapter takes to compile each WGSL file (pipeline creation and the first
//! dispatch: lavapipe/llvmpipe compile a kernel when it first runs), and how long a
//! dispatch then takes (best of 5 submissions of `--reps` dispatches). For kernel work
//! together with `OPS_DUMP_WGSL=DIR`, which writes every kernel the engine builds, so
//! that hand-edited variants can be timed against the generated one:
//!
//! ```text
//! OPS_DUMP_WGSL=/tmp/k ./target/release/examples/kernel_profile mlp
//! MESA_SHADER_CACHE_DISABLE=true ./target/release/examples/compile_time [--grid 2,1,1] [--reps 20] /tmp/k/*.wgsl
//! ```
//!
//! Each storage binding the kernel uses gets an 8 MiB buffer (zeros), each uniform 256
//! bytes; `--grid` workgroups are dispatched (default one). Subgroup operations are
//! enabled where the adapter has them.

fn main() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: single-threaded at this point; only EGL reads it.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", "/tmp") };
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("an adapter");
    let features = adapter.features() & wgpu::Features::SUBGROUP;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_features: features,
        ..Default::default()
    }))
    .expect("a device");
    let mut grid = [1u32; 3];
    let mut reps = 1u32;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--grid" => {
                let text = args.next().unwrap_or_default();
                for (g, v) in grid.iter_mut().zip(text.split(',')) {
                    *g = v.parse().expect("--grid X,Y,Z");
                }
            }
            "--reps" => reps = args.next().and_then(|v| v.parse().ok()).expect("--reps N"),
            _ => files.push(arg),
        }
    }
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
    for path in files {
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
        let submit = |dispatches: u32| {
            let started = std::time::Instant::now();
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                for _ in 0..dispatches {
                    pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
                }
            }
            queue.submit([encoder.finish()]);
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("device alive");
            started.elapsed().as_secs_f64()
        };
        let first = submit(1);
        let best = (0..5)
            .map(|_| submit(reps) / f64::from(reps))
            .fold(f64::INFINITY, f64::min);
        println!(
            "{path}: create {:.0} ms, first dispatch {:.0} ms, then {:.3} ms per dispatch",
            created * 1e3,
            first * 1e3,
            best * 1e3
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
