// erf and erfc in float32, included by kernels that need the exact GELU.
// WGSL has no erf. Abramowitz-Stegun 7.1.26 (max error 1.5e-7 absolute, far
// worse relative in the tails) is not good enough for GELU of negative inputs,
// so this is a port of the rational approximations of Sun's fdlibm s_erff.c
// (W. J. Cody style, as shipped by FreeBSD and musl), accurate to about one
// float32 ulp given an accurate exp:
//
// ====================================================
// Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
//
// Developed at SunPro, a Sun Microsystems, Inc. business.
// Permission to use, copy, modify, and distribute this
// software is freely granted, provided that this notice
// is preserved.
// ====================================================

const erx: f32 = 8.4506291151e-01;
const efx8: f32 = 1.0270333290e+00;
const pp0: f32 = 1.2837916613e-01;
const pp1: f32 = -3.2504209876e-01;
const pp2: f32 = -2.8481749818e-02;
const pp3: f32 = -5.7702702470e-03;
const pp4: f32 = -2.3763017452e-05;
const qq1: f32 = 3.9791721106e-01;
const qq2: f32 = 6.5022252500e-02;
const qq3: f32 = 5.0813062117e-03;
const qq4: f32 = 1.3249473704e-04;
const qq5: f32 = -3.9602282413e-06;
const pa0: f32 = -2.3621185683e-03;
const pa1: f32 = 4.1485610604e-01;
const pa2: f32 = -3.7220788002e-01;
const pa3: f32 = 3.1834661961e-01;
const pa4: f32 = -1.1089469492e-01;
const pa5: f32 = 3.5478305072e-02;
const pa6: f32 = -2.1663755178e-03;
const qa1: f32 = 1.0642088205e-01;
const qa2: f32 = 5.4039794207e-01;
const qa3: f32 = 7.1828655899e-02;
const qa4: f32 = 1.2617121637e-01;
const qa5: f32 = 1.3637083583e-02;
const qa6: f32 = 1.1984500103e-02;
const ra0: f32 = -9.8649440333e-03;
const ra1: f32 = -6.9385856390e-01;
const ra2: f32 = -1.0558626175e+01;
const ra3: f32 = -6.2375331879e+01;
const ra4: f32 = -1.6239666748e+02;
const ra5: f32 = -1.8460508728e+02;
const ra6: f32 = -8.1287437439e+01;
const ra7: f32 = -9.8143291473e+00;
const sa1: f32 = 1.9651271820e+01;
const sa2: f32 = 1.3765776062e+02;
const sa3: f32 = 4.3456588745e+02;
const sa4: f32 = 6.4538726807e+02;
const sa5: f32 = 4.2900814819e+02;
const sa6: f32 = 1.0863500214e+02;
const sa7: f32 = 6.5702495575e+00;
const sa8: f32 = -6.0424413532e-02;
const rb0: f32 = -9.8649431020e-03;
const rb1: f32 = -7.9928326607e-01;
const rb2: f32 = -1.7757955551e+01;
const rb3: f32 = -1.6063638306e+02;
const rb4: f32 = -6.3756646729e+02;
const rb5: f32 = -1.0250950928e+03;
const rb6: f32 = -4.8351919556e+02;
const sb1: f32 = 3.0338060379e+01;
const sb2: f32 = 3.2579251099e+02;
const sb3: f32 = 1.5367296143e+03;
const sb4: f32 = 3.1998581543e+03;
const sb5: f32 = 2.5530502930e+03;
const sb6: f32 = 4.7452853394e+02;
const sb7: f32 = -2.2440952301e+01;

// erfc_tail is erfc(|x|) for 0.84375 <= |x| < 28 (ix is |x|'s bits).
fn erfc_tail(ix: u32, x: f32) -> f32 {
    let a = abs(x);
    if (ix < 0x3fa00000u) { // |x| < 1.25
        let s = a - 1.0;
        let p = pa0 + s * (pa1 + s * (pa2 + s * (pa3 + s * (pa4 + s * (pa5 + s * pa6)))));
        let q = 1.0 + s * (qa1 + s * (qa2 + s * (qa3 + s * (qa4 + s * (qa5 + s * qa6)))));
        return 1.0 - erx - p / q;
    }
    let s = 1.0 / (a * a);
    var r: f32;
    var t: f32;
    if (ix < 0x4036db6du) { // |x| < 1/0.35
        r = ra0 + s * (ra1 + s * (ra2 + s * (ra3 + s * (ra4 + s * (ra5 + s * (ra6 + s * ra7))))));
        t = 1.0 + s * (sa1 + s * (sa2 + s * (sa3 + s * (sa4 + s * (sa5 + s * (sa6 + s * (sa7 + s * sa8)))))));
    } else {
        r = rb0 + s * (rb1 + s * (rb2 + s * (rb3 + s * (rb4 + s * (rb5 + s * rb6)))));
        t = 1.0 + s * (sb1 + s * (sb2 + s * (sb3 + s * (sb4 + s * (sb5 + s * (sb6 + s * sb7))))));
    }
    // Splitting exp(-x²) as exp(-z²)·exp((z-x)(z+x)) with z = x rounded to
    // 11 mantissa bits keeps -x² exact enough in float32.
    let z = bitcast<f32>(bitcast<u32>(a) & 0xffffe000u);
    return exp(-z * z - 0.5625) * exp((z - a) * (z + a) + r / t) / a;
}

// erf_small is x + x·P(x²)/Q(x²), valid for |x| < 0.84375.
fn erf_small(x: f32) -> f32 {
    let z = x * x;
    let r = pp0 + z * (pp1 + z * (pp2 + z * (pp3 + z * pp4)));
    let s = 1.0 + z * (qq1 + z * (qq2 + z * (qq3 + z * (qq4 + z * qq5))));
    return x + x * (r / s);
}

fn erf_f32(x: f32) -> f32 {
    let ix = bitcast<u32>(x) & 0x7fffffffu;
    if (ix < 0x3f580000u) { // |x| < 0.84375
        if (ix < 0x31800000u) { // |x| < 2**-28
            return 0.125 * (8.0 * x + efx8 * x);
        }
        return erf_small(x);
    }
    var y = 1.0;
    if (ix < 0x40c00000u) { // |x| < 6
        y = 1.0 - erfc_tail(ix, x);
    }
    return select(y, -y, x < 0.0);
}

fn erfc_f32(x: f32) -> f32 {
    let ix = bitcast<u32>(x) & 0x7fffffffu;
    if (ix < 0x3f580000u) { // |x| < 0.84375
        if (ix < 0x23800000u) { // |x| < 2**-56
            return 1.0 - x;
        }
        let z = x * x;
        let r = pp0 + z * (pp1 + z * (pp2 + z * (pp3 + z * pp4)));
        let s = 1.0 + z * (qq1 + z * (qq2 + z * (qq3 + z * (qq4 + z * qq5))));
        let y = r / s;
        if (x < 0.0 || ix < 0x3e800000u) { // x < 1/4
            return 1.0 - (x + x * y);
        }
        return 0.5 - (x - 0.5 + x * y);
    }
    if (ix < 0x41e00000u) { // |x| < 28
        let t = erfc_tail(ix, x);
        return select(t, 2.0 - t, x < 0.0);
    }
    return select(0.0, 2.0, x < 0.0);
}

// gelu_erf is the exact GELU 0.5·x·(1 + erf(x/√2)), written with erfc so
// negative inputs keep their relative accuracy instead of cancelling in 1+erf.
fn gelu_erf(x: f32) -> f32 {
    return 0.5 * x * erfc_f32(-x * 0.70710678118654752);
}
