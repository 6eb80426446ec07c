fn main() -> anyhow::Result<()> {
    for p in std::env::args().skip(1) {
        let g = hawq_compiler::import::import(std::path::Path::new(&p))?;
        println!("{p}: input {:?} {:?} output {:?}", g.input_shape(), g.input_layout, g.output_shape());
        for n in &g.nodes {
            println!(
                "  {:<40} {:<16} {:?} -> {:?}",
                n.name,
                n.op.name(),
                n.inputs.iter().map(|&i| g.values[i].shape.clone()).collect::<Vec<_>>(),
                g.values[n.output].shape
            );
        }
    }
    Ok(())
}
