//! The tracer: rays from the camera, bounced off mirrors and through glass,
//! lit by point lights (hard shadows) and an area light (soft ones).
//!
//! Everything here is a pure function of the scene and the pixel, with a
//! fixed order of floating-point operations per pixel: a row computes to
//! the same bytes in any process, which is what lets the image be cut into
//! bands rendered anywhere and still come out identical.

use std::ops::Range;

use crate::scene::{Material, Scene, Sphere, Texture, Vec3, MAX_DEPTH, SUBPIXELS};

/// How far a secondary ray starts off its surface, so that it does not hit
/// the surface it leaves.
const EPSILON: f64 = 1e-6;

#[derive(Debug, Clone, Copy)]
pub struct Ray {
    pub origin: Vec3,
    /// Unit length.
    pub direction: Vec3,
}

/// The ray through point (`x`, `y`) of a `width` x `height` image, in pixel
/// units from the top left corner.
pub fn camera_ray(scene: &Scene, width: u32, height: u32, x: f64, y: f64) -> Ray {
    let camera = &scene.camera;
    let forward = (camera.target - camera.eye).normalized();
    let right = camera.up.cross(forward).normalized();
    let up = forward.cross(right);
    let half_height = (camera.fov_degrees.to_radians() / 2.0).tan();
    let half_width = half_height * f64::from(width) / f64::from(height);
    let u = (2.0 * x / f64::from(width) - 1.0) * half_width;
    let w = (1.0 - 2.0 * y / f64::from(height)) * half_height;
    Ray {
        origin: camera.eye,
        direction: (forward + right * u + up * w).normalized(),
    }
}

/// Distance along `ray` to `sphere`, if it is hit in front of the origin.
fn hit_sphere(ray: &Ray, sphere: &Sphere) -> Option<f64> {
    let oc = ray.origin - sphere.center;
    let b = oc.dot(ray.direction);
    let c = oc.dot(oc) - sphere.radius * sphere.radius;
    let discriminant = b * b - c;
    if discriminant < 0.0 {
        return None;
    }
    let root = discriminant.sqrt();
    [-b - root, -b + root].into_iter().find(|&t| t > EPSILON)
}

/// What a ray hit first.
enum Hit<'a> {
    Sphere(&'a Sphere, f64),
    Ground(f64),
}

fn nearest<'a>(scene: &'a Scene, ray: &Ray) -> Option<Hit<'a>> {
    let mut best: Option<Hit<'a>> = None;
    let mut best_t = f64::INFINITY;
    for sphere in &scene.spheres {
        if let Some(t) = hit_sphere(ray, sphere) {
            if t < best_t {
                best_t = t;
                best = Some(Hit::Sphere(sphere, t));
            }
        }
    }
    if ray.direction.y < 0.0 {
        let t = (scene.ground.height - ray.origin.y) / ray.direction.y;
        if t > EPSILON && t < best_t {
            best = Some(Hit::Ground(t));
        }
    }
    best
}

/// Whether anything stands between `point` and a light `distance` away in
/// `direction`. Only the spheres cast shadows: every light is above the
/// floor.
fn shadowed(scene: &Scene, point: Vec3, direction: Vec3, distance: f64) -> bool {
    let ray = Ray {
        origin: point,
        direction,
    };
    scene
        .spheres
        .iter()
        .any(|s| hit_sphere(&ray, s).is_some_and(|t| t < distance))
}

/// The sky seen along `direction`.
pub fn sky(scene: &Scene, direction: Vec3) -> Vec3 {
    let t = 0.5 * (direction.y + 1.0);
    scene.horizon * (1.0 - t) + scene.zenith * t
}

/// The surface colour of `material` at a point whose outward normal on a
/// sphere is `normal`.
fn albedo(material: &Material, normal: Vec3) -> Vec3 {
    match material.texture {
        Texture::Plain => material.color,
        Texture::Checker {
            other,
            across,
            down,
        } => {
            let u = 0.5 + normal.z.atan2(normal.x) / (2.0 * std::f64::consts::PI);
            let v = 0.5 - normal.y.clamp(-1.0, 1.0).asin() / std::f64::consts::PI;
            let cell = (u * across).floor() as i64 + (v * down).floor() as i64;
            match cell.rem_euclid(2) {
                0 => material.color,
                _ => other,
            }
        }
    }
}

/// One light's share at `point`: Lambert plus a Blinn-Phong highlight, or
/// nothing if the light is behind the surface or shadowed.
#[allow(clippy::too_many_arguments)]
fn light_share(
    scene: &Scene,
    point: Vec3,
    normal: Vec3,
    view: Vec3,
    color: Vec3,
    material: &Material,
    light_position: Vec3,
    light_color: Vec3,
) -> Vec3 {
    let to_light = light_position - point;
    let distance = to_light.length();
    let direction = to_light * (1.0 / distance);
    let facing = normal.dot(direction);
    if facing <= 0.0 || shadowed(scene, point + normal * EPSILON, direction, distance) {
        return Vec3::ZERO;
    }
    let mut share = color.tint(light_color) * (material.diffuse * facing);
    if material.specular > 0.0 {
        let half = (direction - view).normalized();
        let highlight = normal.dot(half).max(0.0).powf(material.shininess);
        share = share + light_color * (material.specular * highlight);
    }
    share
}

/// Every light as (position, colour): the point lights, then the area
/// light's samples at the centres of its grid, each a share of its colour.
fn lights(scene: &Scene) -> impl Iterator<Item = (Vec3, Vec3)> + '_ {
    let area = &scene.area_light;
    let n = area.samples;
    let sample_color = area.color * (1.0 / (n * n) as f64);
    let samples = (0..n * n).map(move |k| {
        let (i, j) = (k / n, k % n);
        let position = area.corner
            + area.edge_u * ((i as f64 + 0.5) / n as f64)
            + area.edge_v * ((j as f64 + 0.5) / n as f64);
        (position, sample_color)
    });
    scene
        .point_lights
        .iter()
        .map(|light| (light.position, light.color))
        .chain(samples)
}

/// Light reaching `point` directly: ambient, then every light in a fixed
/// order.
fn direct(
    scene: &Scene,
    point: Vec3,
    normal: Vec3,
    view: Vec3,
    color: Vec3,
    material: &Material,
) -> Vec3 {
    let mut total = color * scene.ambient;
    for (position, light_color) in lights(scene) {
        total = total
            + light_share(
                scene,
                point,
                normal,
                view,
                color,
                material,
                position,
                light_color,
            );
    }
    total
}

fn reflect(direction: Vec3, normal: Vec3) -> Vec3 {
    direction - normal * (2.0 * direction.dot(normal))
}

/// The colour seen along `ray`, after `depth` bounces so far.
pub fn trace(scene: &Scene, ray: &Ray, depth: u32) -> Vec3 {
    let Some(hit) = nearest(scene, ray) else {
        return sky(scene, ray.direction);
    };
    let view = ray.direction;
    match hit {
        Hit::Ground(t) => {
            let point = ray.origin + view * t;
            let square = scene.ground.square;
            let cell = (point.x / square).floor() as i64 + (point.z / square).floor() as i64;
            let color = match cell.rem_euclid(2) {
                0 => scene.ground.light,
                _ => scene.ground.dark,
            };
            let floor = Material {
                color,
                ..crate::scene::MATTE
            };
            direct(
                scene,
                point,
                Vec3 {
                    x: 0.0,
                    y: 1.0,
                    z: 0.0,
                },
                view,
                color,
                &floor,
            )
        }
        Hit::Sphere(sphere, t) => {
            let material = &sphere.material;
            let point = ray.origin + view * t;
            let outward = (point - sphere.center) * (1.0 / sphere.radius);
            let inside = outward.dot(view) > 0.0;
            let normal = if inside { -outward } else { outward };
            let color = albedo(material, outward);
            let own = 1.0 - material.reflect - material.transmit;
            let mut total = direct(scene, point, normal, view, color, material) * own;
            if depth >= MAX_DEPTH {
                return total;
            }
            let bounce = |direction: Vec3, side: Vec3| {
                let ray = Ray {
                    origin: point + side * EPSILON,
                    direction,
                };
                trace(scene, &ray, depth + 1)
            };
            if material.reflect > 0.0 {
                total = total
                    + bounce(reflect(view, normal), normal).tint(material.color) * material.reflect;
            }
            if material.transmit > 0.0 {
                let eta = if inside {
                    material.index
                } else {
                    1.0 / material.index
                };
                let cos_in = -view.dot(normal);
                let r0 = ((1.0 - material.index) / (1.0 + material.index)).powi(2);
                let k = 1.0 - eta * eta * (1.0 - cos_in * cos_in);
                let through = if k < 0.0 {
                    Vec3::ZERO // total internal reflection: all of it reflects
                } else {
                    let refracted = (view * eta + normal * (eta * cos_in - k.sqrt())).normalized();
                    bounce(refracted, -normal)
                };
                let fresnel = if k < 0.0 {
                    1.0
                } else {
                    r0 + (1.0 - r0) * (1.0 - cos_in).powi(5)
                };
                let mirrored = bounce(reflect(view, normal), normal);
                total = total
                    + (mirrored * fresnel + through.tint(material.color) * (1.0 - fresnel))
                        * material.transmit;
            }
            total
        }
    }
}

/// Linear light to an 8-bit sRGB value.
pub fn to_srgb8(linear: f64) -> u8 {
    let c = linear.clamp(0.0, 1.0);
    let encoded = if c <= 0.003_130_8 {
        12.92 * c
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    };
    (encoded * 255.0 + 0.5).floor() as u8
}

/// Rows `rows` of a `width` x `height` image, RGB, 3 bytes per pixel, each
/// pixel the mean of its [`SUBPIXELS`] in linear light.
pub fn render_rows(scene: &Scene, width: u32, height: u32, rows: Range<u32>) -> Vec<u8> {
    let mut pixels = Vec::with_capacity(rows.len() * width as usize * 3);
    for y in rows {
        for x in 0..width {
            let mut sum = Vec3::ZERO;
            for (dx, dy) in SUBPIXELS {
                let ray = camera_ray(scene, width, height, f64::from(x) + dx, f64::from(y) + dy);
                sum = sum + trace(scene, &ray, 0);
            }
            let mean = sum * (1.0 / SUBPIXELS.len() as f64);
            pixels.extend([to_srgb8(mean.x), to_srgb8(mean.y), to_srgb8(mean.z)]);
        }
    }
    pixels
}
