//! Compiles `proto/fleetkey/v1/*.proto` (with protox: no protoc needed) into the
//! gRPC service and its messages, and keeps the descriptor set for server
//! reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("fleetkey/v1/crypto.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("fleetkey_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
