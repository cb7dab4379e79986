//! The ray tracer example (`examples/raytracer`): the same picture, byte for
//! byte, whatever the mode and the number of workers, even when a worker is
//! killed; a few pixels checked against shading computed here, by code of
//! its own; bad input refused in one line.
//!
//! The example is built by `cargo test` beside this test; it is run as a
//! program, as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// The scene is data: read the same one the example renders. The shading
// below is this test's own.
#[allow(dead_code)]
#[path = "../examples/raytracer/scene.rs"]
mod scene;

use scene::{Scene, Vec3};

const WIDTH: u32 = 96;
const HEIGHT: u32 = 64;

fn raytracer() -> PathBuf {
    // tests run from target/<profile>/deps; examples live in target/<profile>/examples.
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile.join("examples").join("raytracer");
    assert!(
        path.exists(),
        "{} is missing: run the whole suite (cargo test --release), which builds the examples",
        path.display()
    );
    path
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(raytracer());
    command.args(args);
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("run the raytracer")
}

/// Renders the small picture and returns its RGB bytes, read back from the
/// file the program wrote.
fn render(mode: &str, workers: usize, extension: &str, envs: &[(&str, &str)]) -> (Vec<u8>, Output) {
    let folder = tempfile::tempdir().expect("temporary folder");
    let output = folder.path().join(format!("scene.{extension}"));
    let size = format!("{WIDTH}x{HEIGHT}");
    let workers = workers.to_string();
    let out = run(
        &[
            "--mode",
            mode,
            "--workers",
            &workers,
            "--size",
            &size,
            "-o",
            output.to_str().expect("utf-8 path"),
        ],
        envs,
    );
    assert!(
        out.status.success(),
        "{mode} x{workers}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let picture = image::open(&output).expect("decode the picture").to_rgb8();
    assert_eq!(picture.dimensions(), (WIDTH, HEIGHT));
    (picture.into_raw(), out)
}

const MODES: [&str; 4] = ["exchange", "pmap", "queue", "reusable"];

#[test]
fn every_mode_and_worker_count_paints_the_same_bytes() {
    let (reference, out) = render("exchange", 1, "png", &[]);
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let hash = format!("{:016x}", twox_hash::XxHash3_64::oneshot(&reference));
    assert!(
        printed.contains(&hash),
        "the program prints the pixels' hash: {printed}"
    );
    for mode in MODES {
        for workers in [1, 2, 3] {
            let (pixels, _) = render(mode, workers, "png", &[]);
            assert!(pixels == reference, "{mode} with {workers} workers differs");
        }
    }
    // The TIFF holds the same pixels.
    let (tiff, _) = render("queue", 2, "tif", &[]);
    assert!(tiff == reference, "the TIFF differs");
}

#[test]
fn a_worker_killed_mid_render_costs_one_band_rendered_again() {
    let (reference, _) = render("exchange", 1, "png", &[]);
    for mode in MODES {
        let (pixels, out) = render(mode, 2, "png", &[("RAYTRACER_KILL_BAND", "3")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("1 band(s) lost") && stderr.contains("rendering them again"),
            "{mode}: {stderr}"
        );
        assert!(pixels == reference, "{mode}: the picture changed");
    }
}

// ---- Shading computed here, independently of examples/raytracer/trace.rs ----

fn sub(a: Vec3, b: Vec3) -> Vec3 {
    Vec3 {
        x: a.x - b.x,
        y: a.y - b.y,
        z: a.z - b.z,
    }
}

fn scale(a: Vec3, k: f64) -> Vec3 {
    Vec3 {
        x: a.x * k,
        y: a.y * k,
        z: a.z * k,
    }
}

fn plus(a: Vec3, b: Vec3) -> Vec3 {
    Vec3 {
        x: a.x + b.x,
        y: a.y + b.y,
        z: a.z + b.z,
    }
}

fn unit(a: Vec3) -> Vec3 {
    scale(a, 1.0 / a.dot(a).sqrt())
}

/// Camera basis: forward, right (x grows to the right of the picture), up.
fn basis(scene: &Scene) -> (Vec3, Vec3, Vec3, f64) {
    let forward = unit(sub(scene.camera.target, scene.camera.eye));
    let right = unit(scene.camera.up.cross(forward));
    let up = forward.cross(right);
    let half_height = (scene.camera.fov_degrees.to_radians() / 2.0).tan();
    (forward, right, up, half_height)
}

/// The direction through picture point (x, y), in pixels from the top left.
fn direction(scene: &Scene, x: f64, y: f64) -> Vec3 {
    let (forward, right, up, half_height) = basis(scene);
    let half_width = half_height * f64::from(WIDTH) / f64::from(HEIGHT);
    let u = (x / f64::from(WIDTH) * 2.0 - 1.0) * half_width;
    let w = (1.0 - y / f64::from(HEIGHT) * 2.0) * half_height;
    unit(plus(forward, plus(scale(right, u), scale(up, w))))
}

/// The pixel a world point falls in.
fn project(scene: &Scene, point: Vec3) -> (u32, u32) {
    let (forward, right, up, half_height) = basis(scene);
    let half_width = half_height * f64::from(WIDTH) / f64::from(HEIGHT);
    let d = sub(point, scene.camera.eye);
    let depth = d.dot(forward);
    let u = d.dot(right) / depth / half_width;
    let w = d.dot(up) / depth / half_height;
    let x = (u + 1.0) / 2.0 * f64::from(WIDTH);
    let y = (1.0 - w) / 2.0 * f64::from(HEIGHT);
    (x.floor() as u32, y.floor() as u32)
}

/// Smallest positive root of |o + t d - c|^2 = r^2 by the school formula.
fn sphere_hit(origin: Vec3, d: Vec3, center: Vec3, radius: f64) -> Option<f64> {
    let oc = sub(origin, center);
    let (a, b, c) = (d.dot(d), 2.0 * oc.dot(d), oc.dot(oc) - radius * radius);
    let disc = b * b - 4.0 * a * c;
    if disc < 0.0 {
        return None;
    }
    let roots = [
        (-b - disc.sqrt()) / (2.0 * a),
        (-b + disc.sqrt()) / (2.0 * a),
    ];
    roots.into_iter().find(|&t| t > 1e-6)
}

enum Seen {
    Sky,
    Ground(Vec3),
    Sphere(usize, Vec3),
}

fn first_seen(scene: &Scene, d: Vec3) -> Seen {
    let eye = scene.camera.eye;
    let mut best = (f64::INFINITY, Seen::Sky);
    for (i, s) in scene.spheres.iter().enumerate() {
        if let Some(t) = sphere_hit(eye, d, s.center, s.radius) {
            if t < best.0 {
                best = (t, Seen::Sphere(i, plus(eye, scale(d, t))));
            }
        }
    }
    if d.y < 0.0 {
        let t = (scene.ground.height - eye.y) / d.y;
        if t < best.0 {
            best = (t, Seen::Ground(plus(eye, scale(d, t))));
        }
    }
    best.1
}

/// Every light as (position, colour): the point lights, then the area
/// light's samples at the centres of its grid, each a share of its colour.
fn lights(scene: &Scene) -> Vec<(Vec3, Vec3)> {
    let mut all: Vec<(Vec3, Vec3)> = scene
        .point_lights
        .iter()
        .map(|l| (l.position, l.color))
        .collect();
    let a = &scene.area_light;
    let n = a.samples as f64;
    for i in 0..a.samples {
        for j in 0..a.samples {
            let at = plus(
                a.corner,
                plus(
                    scale(a.edge_u, (i as f64 + 0.5) / n),
                    scale(a.edge_v, (j as f64 + 0.5) / n),
                ),
            );
            all.push((at, scale(a.color, 1.0 / (n * n))));
        }
    }
    all
}

fn blocked(scene: &Scene, point: Vec3, light: Vec3) -> bool {
    let to = sub(light, point);
    let distance = to.dot(to).sqrt();
    let d = scale(to, 1.0 / distance);
    scene
        .spheres
        .iter()
        .any(|s| sphere_hit(point, d, s.center, s.radius).is_some_and(|t| t < distance))
}

/// A matte (Lambert only) surface: ambient plus every light it sees.
fn matte(scene: &Scene, point: Vec3, normal: Vec3, albedo: Vec3) -> Vec3 {
    let mut c = scale(albedo, scene.ambient);
    for (position, color) in lights(scene) {
        let l = unit(sub(position, point));
        let cos = normal.dot(l);
        if cos > 0.0 && !blocked(scene, plus(point, scale(normal, 1e-6)), position) {
            c = plus(c, scale(albedo.tint(color), cos));
        }
    }
    c
}

fn srgb(linear: f64) -> i32 {
    let c = linear.clamp(0.0, 1.0);
    let s = if c <= 0.0031308 {
        c * 12.92
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0).round() as i32
}

fn pixel(pixels: &[u8], x: u32, y: u32) -> [i32; 3] {
    let at = ((y * WIDTH + x) * 3) as usize;
    [
        pixels[at].into(),
        pixels[at + 1].into(),
        pixels[at + 2].into(),
    ]
}

/// The mean over the pixel's four sample points of `shade`, encoded.
fn expected(scene: &Scene, x: u32, y: u32, shade: &dyn Fn(Vec3) -> Vec3) -> [i32; 3] {
    let mut sum = Vec3 {
        x: 0.0,
        y: 0.0,
        z: 0.0,
    };
    for (dx, dy) in scene::SUBPIXELS {
        sum = plus(
            sum,
            shade(direction(scene, f64::from(x) + dx, f64::from(y) + dy)),
        );
    }
    let mean = scale(sum, 0.25);
    [srgb(mean.x), srgb(mean.y), srgb(mean.z)]
}

fn assert_close(what: &str, got: [i32; 3], want: [i32; 3]) {
    let off = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .max()
        .unwrap_or(0);
    assert!(off <= 1, "{what}: rendered {got:?}, computed {want:?}");
}

#[test]
fn pixels_match_shading_computed_independently() {
    let scene = scene::scene();
    let (pixels, _) = render("reusable", 2, "png", &[]);

    // Sky: the top corners, every sample ray missing everything.
    for x in [0, WIDTH - 1] {
        let want = expected(&scene, x, 0, &|d| {
            assert!(matches!(first_seen(&scene, d), Seen::Sky));
            let t = 0.5 * (d.y + 1.0);
            plus(scale(scene.horizon, 1.0 - t), scale(scene.zenith, t))
        });
        assert_close("sky", pixel(&pixels, x, 0), want);
    }

    // The middle of the matte sphere, seen head on.
    let ball = scene.spheres[0];
    let m = ball.material;
    assert!(m.specular == 0.0 && m.reflect == 0.0 && m.transmit == 0.0 && m.diffuse == 1.0);
    let (x, y) = project(&scene, ball.center);
    let want = expected(&scene, x, y, &|d| match first_seen(&scene, d) {
        Seen::Sphere(0, p) => matte(&scene, p, unit(sub(p, ball.center)), m.color),
        _ => panic!("pixel ({x}, {y}) does not look at the matte sphere"),
    });
    assert_close("matte sphere", pixel(&pixels, x, y), want);

    // Floor pixels where a point light is hidden from every sample point.
    let floor_color = |p: Vec3| {
        let g = &scene.ground;
        match ((p.x / g.square).floor() as i64 + (p.z / g.square).floor() as i64).rem_euclid(2) {
            0 => g.light,
            _ => g.dark,
        }
    };
    let up = Vec3 {
        x: 0.0,
        y: 1.0,
        z: 0.0,
    };
    let mut checked = 0;
    'rows: for y in (HEIGHT / 2..HEIGHT).rev() {
        for x in 0..WIDTH {
            let shaded_floor = (0..scene.point_lights.len()).any(|light| {
                scene::SUBPIXELS.iter().all(|&(dx, dy)| {
                    match first_seen(
                        &scene,
                        direction(&scene, f64::from(x) + dx, f64::from(y) + dy),
                    ) {
                        Seen::Ground(p) => blocked(&scene, p, scene.point_lights[light].position),
                        _ => false,
                    }
                })
            });
            if !shaded_floor {
                continue;
            }
            let want = expected(&scene, x, y, &|d| match first_seen(&scene, d) {
                Seen::Ground(p) => matte(&scene, p, up, floor_color(p)),
                _ => unreachable!("checked above"),
            });
            assert_close(
                &format!("floor in shadow at ({x}, {y})"),
                pixel(&pixels, x, y),
                want,
            );
            checked += 1;
            if checked == 5 {
                break 'rows;
            }
        }
    }
    assert_eq!(checked, 5, "the scene has shadows on the floor");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let file = folder.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    let under_a_file = file.join("scene.png");
    let nowhere = folder.path().join("no-such-folder").join("scene.png");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--mode", "sideways"], "invalid value 'sideways'"),
        (vec!["--size", "0x10"], "--size must be"),
        (vec!["--size", "640x0"], "--size must be"),
        (vec!["--size", "16385x10"], "--size must be"),
        (vec!["--size", "wide"], "--size must be"),
        (vec!["--workers", "0"], "--workers must be"),
        (vec!["-o", "scene.jpg"], "cannot tell the image format"),
        (
            vec!["-o", under_a_file.to_str().expect("utf-8")],
            "cannot write",
        ),
        (vec!["-o", nowhere.to_str().expect("utf-8")], "cannot write"),
    ];
    for (args, says) in cases {
        let out = run(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("raytracer: ") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
    assert!(!Path::new("scene.jpg").exists());
}
