# machine: AMD EPYC (family 25 model 17), 2 cpus | isa_best avx2 | duet 0.1.0 | OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY USE_OPENMP Cooperlake MAX_THREADS=64, 2 threads | cc 12.2.0 | 2026-11-25 22:28 UTC
# Draws breakdown.csv (same folder) to breakdown.svg: cd there; gnuplot breakdown.gp
set datafile separator ','
set terminal svg size 1200,900 noenhanced font 'sans,12' background '#ffffff'
set output 'breakdown.svg'
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.75
set xtics rotate by -45 scale 0
set key outside right top
set grid ytics
wall(x) = x < 1e3 ? sprintf('%.0f ns', x) : x < 1e6 ? sprintf('%.1f us', x / 1e3) : sprintf('%.1f ms', x / 1e6)
row = "stringcolumn('op').' '.stringcolumn('size')"
set multiplot layout 2,1 title 'duet-bench breakdown: where the time of one eager op goes (means over many calls, probe cost taken out)'
set title 'share of each phase in the phase sum; the wall time of the call above each bar'
set yrange [0:130]
set ytics 0,20,100
set ylabel '% of the phase sum'
plot 'breakdown.csv' using 'validate_pct':xtic(@row) title 'validate', \
     '' using 'shape_pct' title 'shape', \
     '' using 'alloc_pct' title 'alloc', \
     '' using 'select_pct' title 'select', \
     '' using 'kernel_pct' title 'kernel', \
     '' using 0:(102):(wall(column('wall_ns'))) with labels left rotate by 90 font 'sans,10' notitle
set title 'the overhead in ns: every phase but the kernel'
set yrange [0:*]
set ytics autofreq
set ylabel 'ns per call'
plot 'breakdown.csv' using (column('validate_ns')):xtic(@row) title 'validate', \
     '' using (column('shape_ns')) title 'shape', \
     '' using (column('alloc_ns')) title 'alloc', \
     '' using (column('select_ns')) title 'select'
unset multiplot
