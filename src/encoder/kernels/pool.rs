//! Pooling of the final NHWC feature map: the global average (the feature vector) and the
//! adaptive 2×2 grid (where things are), as torch's `adaptive_avg_pool2d`.

/// Cell `i` of `cells` along an axis of `size`: `floor(i * size / cells) .. ceil((i + 1) *
/// size / cells)`, torch's adaptive pooling bounds (7 in 2 cells: 0..4 and 3..7).
pub fn adaptive_bounds(size: usize, cells: usize, i: usize) -> (usize, usize) {
    (i * size / cells, ((i + 1) * size).div_ceil(cells))
}

/// Side of the pooled grid.
pub const GRID: usize = 2;

/// For `map [batch, h, w, c]`: `features [batch, c]` (mean over all pixels) and, when
/// `with_grid`, `grid [batch, GRID*GRID, c]` (mean over each adaptive cell, row-major; else empty).
pub fn pool(map: &[f32], h: usize, w: usize, c: usize, with_grid: bool) -> (Vec<f32>, Vec<f32>) {
    let batch = map.len() / (h * w * c);
    let mut features = vec![0f32; batch * c];
    let mut grid = vec![
        0f32;
        if with_grid {
            batch * GRID * GRID * c
        } else {
            0
        }
    ];
    let mut sum = vec![0f64; c];
    for n in 0..batch {
        let img = &map[n * h * w * c..(n + 1) * h * w * c];
        let mean_over =
            |y0: usize, y1: usize, x0: usize, x1: usize, dst: &mut [f32], sum: &mut [f64]| {
                sum.fill(0.0);
                for y in y0..y1 {
                    for x in x0..x1 {
                        for (s, &v) in sum.iter_mut().zip(&img[(y * w + x) * c..][..c]) {
                            *s += v as f64;
                        }
                    }
                }
                let count = ((y1 - y0) * (x1 - x0)) as f64;
                dst.iter_mut()
                    .zip(sum.iter())
                    .for_each(|(d, s)| *d = (s / count) as f32);
            };
        mean_over(0, h, 0, w, &mut features[n * c..(n + 1) * c], &mut sum);
        if !with_grid {
            continue;
        }
        for gy in 0..GRID {
            let (y0, y1) = adaptive_bounds(h, GRID, gy);
            for gx in 0..GRID {
                let (x0, x1) = adaptive_bounds(w, GRID, gx);
                let cell = (n * GRID + gy) * GRID + gx;
                mean_over(
                    y0,
                    y1,
                    x0,
                    x1,
                    &mut grid[cell * c..(cell + 1) * c],
                    &mut sum,
                );
            }
        }
    }
    (features, grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_bounds_match_torch() {
        assert_eq!(adaptive_bounds(7, 2, 0), (0, 4));
        assert_eq!(adaptive_bounds(7, 2, 1), (3, 7));
        assert_eq!(adaptive_bounds(8, 2, 1), (4, 8));
        assert_eq!(adaptive_bounds(1, 2, 1), (0, 1));
    }

    #[test]
    fn grid_cells_average_to_the_features_on_even_maps() {
        let (h, w, c) = (4, 6, 3);
        let map: Vec<f32> = (0..2 * h * w * c)
            .map(|i| ((i * 37) % 11) as f32 - 5.0)
            .collect();
        let (features, grid) = pool(&map, h, w, c, true);
        let (alone, none) = pool(&map, h, w, c, false);
        assert_eq!((alone, none.len()), (features.clone(), 0));
        for n in 0..2 {
            for ch in 0..c {
                let mean: f32 = (0..4).map(|g| grid[(n * 4 + g) * c + ch]).sum::<f32>() / 4.0;
                assert!((mean - features[n * c + ch]).abs() < 1e-5);
            }
        }
        // Top-left cell of image 0, channel 0: rows 0..2, cols 0..3.
        let want: f32 = (0..2)
            .flat_map(|y| (0..3).map(move |x| (y, x)))
            .map(|(y, x)| map[(y * w + x) * c])
            .sum::<f32>()
            / 6.0;
        assert!((grid[0] - want).abs() < 1e-6);
    }
}
