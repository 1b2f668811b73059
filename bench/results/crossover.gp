# machine: AMD EPYC (family 25 model 17), 2 cpus | isa avx2 (best) | threads 2 (default) | duet 0.1.0 | OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY USE_OPENMP Cooperlake MAX_THREADS=64 | oneDNN 2.6.3 | cc gcc 12.2.0 | 2026-11-25 22:36 UTC
# Draws crossover.svg from the CSV beside it: cd there; gnuplot crossover.gp
set datafile separator ','
set terminal svg size 1200,520 noenhanced font 'sans,12' background '#ffffff'
set output 'crossover.svg'
set logscale x 4
set format x '4^%L'
set logscale y 10
set grid
set key top left
set xlabel 'n (elements per input)'
set multiplot layout 1,2 title 'duet-bench crossover: 8-op elementwise chain, eager vs graph (median of the samples)'
set arrow 1 from 4096, graph 0 to 4096, graph 1 nohead dashtype 2
set label 1 'eager overhead < 10 % from here on' at 4096, graph 0.5 center rotate by 90 offset -1,0
set ylabel 'ns per call'
plot 'crossover.csv' using 1:2 with linespoints title 'eager', \
     '' using 1:5 with linespoints title 'graph unfused', \
     '' using 1:8 with linespoints title 'graph fused', \
     '' using 1:16 with linespoints dashtype 2 pointtype 6 title 'graph unfused, no in-place'
set ylabel 'ns per element'
set key top right
plot 'crossover.csv' using 1:11 with linespoints title 'eager', \
     '' using 1:12 with linespoints title 'graph unfused', \
     '' using 1:13 with linespoints title 'graph fused'
unset multiplot
