//! The scene, as data: where things are and what they are made of.
//!
//! Kept apart from the tracer so that the tests can read the same scene and
//! compute a few pixels with their own, independent code.

use std::ops::{Add, Mul, Neg, Sub};

/// A point, a direction or a linear RGB colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vec3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

pub const fn v(x: f64, y: f64, z: f64) -> Vec3 {
    Vec3 { x, y, z }
}

impl Vec3 {
    pub const ZERO: Vec3 = v(0.0, 0.0, 0.0);

    pub fn dot(self, o: Vec3) -> f64 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }

    pub fn cross(self, o: Vec3) -> Vec3 {
        v(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }

    pub fn length(self) -> f64 {
        self.dot(self).sqrt()
    }

    pub fn normalized(self) -> Vec3 {
        self * (1.0 / self.length())
    }

    /// Component-wise product: a colour filtered by another.
    pub fn tint(self, o: Vec3) -> Vec3 {
        v(self.x * o.x, self.y * o.y, self.z * o.z)
    }
}

impl Add for Vec3 {
    type Output = Vec3;
    fn add(self, o: Vec3) -> Vec3 {
        v(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}

impl Sub for Vec3 {
    type Output = Vec3;
    fn sub(self, o: Vec3) -> Vec3 {
        v(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}

impl Mul<f64> for Vec3 {
    type Output = Vec3;
    fn mul(self, k: f64) -> Vec3 {
        v(self.x * k, self.y * k, self.z * k)
    }
}

impl Neg for Vec3 {
    type Output = Vec3;
    fn neg(self) -> Vec3 {
        v(-self.x, -self.y, -self.z)
    }
}

/// How a surface's own colour varies over it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Texture {
    Plain,
    /// Squares in (longitude, latitude) of a sphere: `across` by `down`,
    /// alternating between the material's colour and `other`.
    Checker {
        other: Vec3,
        across: f64,
        down: f64,
    },
}

/// What a surface does with light. The weights of its own shading,
/// mirror reflection and transmission add up to at most 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Material {
    pub color: Vec3,
    pub texture: Texture,
    /// Lambertian weight of the lights.
    pub diffuse: f64,
    /// Blinn-Phong highlight weight and exponent.
    pub specular: f64,
    pub shininess: f64,
    /// Share of the colour taken from the mirror direction.
    pub reflect: f64,
    /// Share of the colour passed through (glass), split between the
    /// reflected and the refracted ray by Fresnel (Schlick).
    pub transmit: f64,
    /// Refractive index, for `transmit`.
    pub index: f64,
}

/// A plain Lambertian surface: the base other materials are made from.
pub const MATTE: Material = Material {
    color: v(0.8, 0.8, 0.8),
    texture: Texture::Plain,
    diffuse: 1.0,
    specular: 0.0,
    shininess: 1.0,
    reflect: 0.0,
    transmit: 0.0,
    index: 1.0,
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sphere {
    pub center: Vec3,
    pub radius: f64,
    pub material: Material,
}

/// The floor: the plane `y = height`, squares of side `square` in x and z.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ground {
    pub height: f64,
    pub square: f64,
    pub light: Vec3,
    pub dark: Vec3,
}

/// A light at a point: hard shadows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointLight {
    pub position: Vec3,
    pub color: Vec3,
}

/// A rectangle of light, sampled at the centres of a `samples` x `samples`
/// grid (the same points every time, in every process): soft shadows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AreaLight {
    pub corner: Vec3,
    pub edge_u: Vec3,
    pub edge_v: Vec3,
    /// The whole rectangle's colour, shared out among its samples.
    pub color: Vec3,
    pub samples: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub eye: Vec3,
    pub target: Vec3,
    pub up: Vec3,
    /// Vertical field of view.
    pub fov_degrees: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub camera: Camera,
    pub ground: Ground,
    pub spheres: Vec<Sphere>,
    pub point_lights: Vec<PointLight>,
    pub area_light: AreaLight,
    /// Light every surface gets, shadowed or not.
    pub ambient: f64,
    /// The sky, blended from the horizon up to the zenith.
    pub horizon: Vec3,
    pub zenith: Vec3,
}

/// Where each pixel is sampled, as offsets inside it: a rotated 2x2 grid,
/// fixed, so every process computes every pixel the same way.
pub const SUBPIXELS: [(f64, f64); 4] = [
    (0.375, 0.125),
    (0.875, 0.375),
    (0.125, 0.625),
    (0.625, 0.875),
];

/// Bounces a ray may make (mirror or glass) before the tracer stops.
pub const MAX_DEPTH: u32 = 5;

/// The scene every run renders: one literal, read as data (its length is
/// the scene's, not logic's).
pub fn scene() -> Scene {
    Scene {
        camera: Camera {
            eye: v(0.0, 1.7, -7.0),
            target: v(0.0, 0.8, 0.5),
            up: v(0.0, 1.0, 0.0),
            fov_degrees: 48.0,
        },
        ground: Ground {
            height: 0.0,
            square: 1.0,
            light: v(0.85, 0.82, 0.75),
            dark: v(0.10, 0.11, 0.13),
        },
        spheres: vec![
            // Matte red.
            Sphere {
                center: v(-2.4, 0.8, 0.6),
                radius: 0.8,
                material: Material {
                    color: v(0.75, 0.12, 0.10),
                    ..MATTE
                },
            },
            // Mirror.
            Sphere {
                center: v(0.1, 1.15, 1.9),
                radius: 1.15,
                material: Material {
                    color: v(0.90, 0.92, 0.95),
                    diffuse: 0.1,
                    specular: 0.6,
                    shininess: 120.0,
                    reflect: 0.85,
                    ..MATTE
                },
            },
            // Glass.
            Sphere {
                center: v(0.9, 0.65, -1.4),
                radius: 0.65,
                material: Material {
                    color: v(0.95, 0.97, 1.0),
                    diffuse: 0.05,
                    specular: 0.8,
                    shininess: 200.0,
                    transmit: 0.92,
                    index: 1.5,
                    ..MATTE
                },
            },
            // Textured: a checkered ball.
            Sphere {
                center: v(2.6, 0.8, 0.9),
                radius: 0.8,
                material: Material {
                    color: v(0.95, 0.75, 0.15),
                    texture: Texture::Checker {
                        other: v(0.10, 0.25, 0.70),
                        across: 12.0,
                        down: 6.0,
                    },
                    specular: 0.3,
                    shininess: 40.0,
                    ..MATTE
                },
            },
            // Small shiny green.
            Sphere {
                center: v(-1.0, 0.4, -1.6),
                radius: 0.4,
                material: Material {
                    color: v(0.15, 0.6, 0.25),
                    diffuse: 0.8,
                    specular: 0.5,
                    shininess: 60.0,
                    reflect: 0.15,
                    ..MATTE
                },
            },
            // Gold, half mirror, at the back.
            Sphere {
                center: v(-1.6, 0.9, 4.2),
                radius: 0.9,
                material: Material {
                    color: v(0.85, 0.65, 0.25),
                    diffuse: 0.5,
                    specular: 0.7,
                    shininess: 80.0,
                    reflect: 0.45,
                    ..MATTE
                },
            },
        ],
        point_lights: vec![
            PointLight {
                position: v(-5.0, 6.0, -4.0),
                color: v(0.55, 0.50, 0.45),
            },
            PointLight {
                position: v(6.0, 4.5, -3.0),
                color: v(0.30, 0.34, 0.42),
            },
        ],
        area_light: AreaLight {
            corner: v(0.0, 7.0, 0.0),
            edge_u: v(2.5, 0.0, 0.0),
            edge_v: v(0.0, 0.0, 2.5),
            color: v(0.45, 0.45, 0.42),
            samples: 4,
        },
        ambient: 0.10,
        horizon: v(0.80, 0.86, 0.95),
        zenith: v(0.22, 0.42, 0.80),
    }
}
