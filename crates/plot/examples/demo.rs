//! Writes a stacked and a line chart to the current directory, to look at.
fn main() {
    use plot::{Chart, Kind, Series};
    let s = |n: &str, k: f64| Series {
        name: n.into(),
        points: (0..10)
            .map(|i| (f64::from(i), k + f64::from(i % 3) * 5.0))
            .collect(),
    };
    let chart = Chart {
        title: "per-subflow throughput (stacked)".into(),
        x_label: "seconds".into(),
        y_label: "Mbit/s".into(),
        kind: Kind::Stacked,
        series: vec![
            s("ue2:enp0s8", 40.0),
            s("ue2:enp0s9", 30.0),
            s("ue2:enp0s10", 20.0),
        ],
    };
    std::fs::write("demo-stacked.png", plot::png(&chart, 900, 450).unwrap()).unwrap();
    std::fs::write("demo-stacked.svg", plot::svg(&chart, 900, 450).unwrap()).unwrap();
}
