#!/usr/bin/perl
# The benchmark's echo handler on Perl's Net::Server (Debian: libnet-server-perl).
#
#   perl benchmarks/peers/netserver_echo.pl PreFork|Fork PORT
#
# Binds 127.0.0.1:PORT (IPv4), log_level 0, in the foreground.  PreFork runs
# 4..8 children with 2..6 spare, Net::Server's other defaults untouched
# (max_requests 1000, serialize flock); Fork its
# defaults (max_servers 256).  The handler greets nobody: it reads a line on
# STDIN (the client, as Net::Server arranges) and prints it back (STDOUT is
# the client, autoflushed); EOF ends the connection.
use strict;
use warnings;

my ($personality, $port) = @ARGV;
die "usage: $0 PreFork|Fork PORT\n"
    unless defined $port && ($personality // '') =~ /^(PreFork|Fork)$/;

package EchoServer;
our @ISA;

sub process_request {
    while (defined(my $line = <STDIN>)) {
        print $line;
    }
}

package main;

my $base = "Net::Server::$personality";
eval "require $base; 1" or die $@;
@EchoServer::ISA = ($base);

my %pool = $personality eq 'PreFork'
    ? (min_servers => 4, max_servers => 8, min_spare_servers => 2, max_spare_servers => 6)
    : ();
EchoServer->run(
    host => '127.0.0.1', port => $port, ipv => 4, log_level => 0,
    background => undef, setsid => undef, %pool,
);
