set terminal png size 900,560
set output 'docs/perf/perf.png'
set title 'Untapped traffic kept vs K=0, veth, half of the traffic matching (median, min-max)'
set xlabel 'capture clients K'
set ylabel 'receiver packet rate, % of K=0'
set logscale x 2
set xrange [0.7:90]
set xtics ('0' 0.8, '1' 1, '4' 4, '16' 16, '64' 64)
set yrange [0:110]
set grid
set key bottom left
plot 'docs/perf/perf.dat' index 0 using ($1==0?0.8:$1):2:3:4 with yerrorlines lw 2 title 'pktd', 'docs/perf/perf.dat' index 1 using ($1==0?0.8:$1):2:3:4 with yerrorlines lw 2 title 'tcpdump'
