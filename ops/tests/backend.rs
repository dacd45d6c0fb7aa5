//! The backend boundary: the device-neutral front (`Gpu`) over a backend that is not wgpu,
//! and handles that cross from one backend to another are refused, not trusted.

mod common;

use std::sync::Mutex;

use ops::Gpu;
use ops::gpu::{
    AdapterSummary, Backend, Buffer, BufferRef, BufferUsage, Dispatch, GpuError, Handle,
    KernelSource, Work, foreign,
};

/// Host memory with copies only: enough to exercise allocate, upload, submit and read
/// back without a device. Kernels are refused (it has no native implementations).
struct HostBackend {
    summary: AdapterSummary,
}

type HostBuffer = Mutex<Vec<u8>>;

fn host(b: &Buffer) -> Result<&HostBuffer, GpuError> {
    b.handle()
        .get::<HostBuffer>()
        .ok_or_else(|| foreign("a buffer"))
}

impl Backend for HostBackend {
    fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    fn allocate(&self, _label: &str, bytes: u64, _usage: BufferUsage) -> Result<Handle, GpuError> {
        Ok(Handle::new(HostBuffer::new(vec![0; bytes as usize])))
    }

    fn upload(&self, dst: &Buffer, offset: u64, bytes: &[u8]) -> Result<(), GpuError> {
        let mut data = host(dst)?.lock().unwrap();
        data[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn compile(&self, source: &KernelSource<'_>) -> Result<Handle, GpuError> {
        Err(GpuError::Shader {
            kernel: source.name.to_string(),
            message: "the host test backend has no kernels".into(),
        })
    }

    fn bind(
        &self,
        _: &Handle,
        name: &str,
        _: &[&BufferRef],
        _: [u32; 3],
    ) -> Result<Handle, GpuError> {
        Err(foreign(&format!("kernel {name}")))
    }

    fn submit(&self, dispatches: &mut dyn Iterator<Item = &Dispatch>) -> Result<(), GpuError> {
        for d in dispatches {
            match d.work() {
                Work::Copy { src, dst } => {
                    let bytes = {
                        let s = host(&src.buffer)?.lock().unwrap();
                        s[src.offset as usize..(src.offset + src.size) as usize].to_vec()
                    };
                    self.upload(&dst.buffer, dst.offset, &bytes)?;
                }
                Work::Compute { .. } => return Err(foreign(&format!("dispatch {}", d.kernel))),
            }
        }
        Ok(())
    }

    fn read_back(&self, src: &BufferRef, _staging: &Buffer) -> Result<Vec<u8>, GpuError> {
        let s = host(&src.buffer)?.lock().unwrap();
        Ok(s[src.offset as usize..(src.offset + src.size) as usize].to_vec())
    }

    fn wait_idle(&self) -> Result<(), GpuError> {
        Ok(())
    }

    fn take_error(&self) -> Result<(), GpuError> {
        Ok(())
    }
}

fn host_gpu() -> Gpu {
    Gpu::with_backend(Box::new(HostBackend {
        summary: AdapterSummary {
            name: "host test backend".into(),
            backend: "host".into(),
            device_type: "Cpu".into(),
            max_buffer_size: 1 << 20,
            max_storage_buffer_binding_size: 1 << 20,
            max_compute_workgroup_size_x: 256,
            max_storage_buffers_per_shader_stage: 8,
            max_compute_workgroups_per_dimension: 65535,
            subgroup_size: None,
            shader_f16: false,
        },
    }))
}

#[test]
fn the_front_runs_uploads_copies_and_read_backs_on_any_backend() {
    let gpu = host_gpu();
    let a = gpu.storage_buffer("a", 64).unwrap();
    let b = gpu.storage_buffer("b", 64).unwrap();
    gpu.write(&a, 0, &[1.0f32, 2.0, 3.0, 4.0]).unwrap();
    let copy = Dispatch::copy(
        &gpu,
        "copy",
        &BufferRef::whole(&a).words(1, 2),
        &BufferRef::whole(&b).words(4, 2),
    );
    // The dispatch list names buffers by label and word range, whatever the backend.
    assert_eq!(copy.info().to_string(), "copy (copy) a[1..3), b[4..6)");
    gpu.submit_dispatches([&copy]).unwrap();
    let read = gpu.read_f32(&BufferRef::whole(&b).words(3, 4)).unwrap();
    assert_eq!(read, vec![0.0, 2.0, 3.0, 0.0]);
    let c = gpu.counters();
    assert_eq!(
        (c.allocations, c.submissions, c.readbacks),
        (3, 2, 1),
        "two buffers and the read-back staging; the copy and the read-back"
    );
}

#[test]
fn writes_that_are_not_whole_words_inside_the_buffer_are_refused() {
    let gpu = host_gpu();
    let a = gpu.storage_buffer("a", 16).unwrap();
    let past_end = gpu.write(&a, 8, &[0.0f32; 4]).unwrap_err();
    assert!(
        past_end.to_string().contains("into a (16 bytes)"),
        "{past_end}"
    );
    assert!(gpu.write(&a, 0, &[0u8; 3]).is_err());
    assert!(gpu.storage_buffer("huge", 1 << 21).is_err());
}

#[test]
fn a_kernel_the_backend_cannot_compile_is_an_error_naming_it() {
    let gpu = host_gpu();
    let x = BufferRef::whole(&gpu.storage_buffer("x", 16).unwrap());
    let err = ops::gpu::KernelBuilder::new(&gpu)
        .compute(
            "fill",
            &["@compute @workgroup_size(1) fn main() {}"],
            &[],
            &[&x],
            [1, 1, 1],
        )
        .unwrap_err();
    assert!(err.to_string().contains("kernel fill"), "{err}");
}

#[test]
fn handles_of_another_backend_are_refused() {
    let wgpu = common::gpu();
    let host = host_gpu();
    let on_host = host.storage_buffer("h", 16).unwrap();
    let on_device = wgpu.storage_buffer("d", 16).unwrap();
    let copy = Dispatch::copy(
        &host,
        "copy",
        &BufferRef::whole(&on_host),
        &BufferRef::whole(&on_device),
    );
    let err = wgpu.submit_dispatches([&copy]).unwrap_err();
    assert!(err.to_string().contains("another backend"), "{err}");
    let err = host.submit_dispatches([&copy]).unwrap_err();
    assert!(err.to_string().contains("another backend"), "{err}");
    assert!(host.write(&on_device, 0, &[1u32]).is_err());
}
