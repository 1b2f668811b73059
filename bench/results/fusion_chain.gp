# machine: AMD EPYC (family 25 model 17), 2 cpus | isa avx2 (best) | threads 2 (default) | duet 0.1.0 | OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY USE_OPENMP Cooperlake MAX_THREADS=64 | oneDNN 2.6.3 | cc gcc 12.2.0 | 2026-11-25 22:36 UTC
# Draws fusion_chain.svg from the CSV beside it: cd there; gnuplot fusion_chain.gp
set datafile separator ','
set datafile missing NaN
set terminal svg size 1200,520 noenhanced font 'sans,12' background '#ffffff'
set output 'fusion_chain.svg'
set grid
set key top left
set xlabel 'chain length L (ops)'
set xrange [0.5:16.5]
set xtics 1,1,16
sel(x) = $2 == 16777216 ? x : NaN
set multiplot layout 1,2 title 'duet-bench fusion: elementwise chain of L ops over two inputs of 16777216 floats, 1 thread (median)'
set ylabel 'ms per call'
set yrange [0:*]
plot 'fusion_chain.csv' using 1:(sel($3)) with linespoints title 'eager', \
     '' using 1:(sel($6)) with linespoints title 'graph unfused', \
     '' using 1:(sel($9)) with linespoints title 'graph fused', \
     '' using 1:(sel($16)) with lines dashtype 3 title 'compute floor (L1 tile)', \
     '' using 1:(sel(2.01327e+08 / ($17 * 1e6))) with lines dashtype 2 lc 'black' title 'STREAM triad time (same rows)'
set ylabel 'GB/s (2 inputs read + 1 output written, once)'
set key center right
plot '' using 1:(sel(2.01327e+08 / ($3 * 1e6))) with linespoints title 'eager', \
     '' using 1:(sel(2.01327e+08 / ($6 * 1e6))) with linespoints title 'graph unfused', \
     '' using 1:(sel($14)) with linespoints title 'graph fused', \
     '' using 1:(sel($17)) with lines dashtype 2 lc 'black' title 'STREAM triad (measured in the same rows)'
unset multiplot
