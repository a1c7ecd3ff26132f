#!/usr/bin/perl
# The benchmark's hello world on Perl's Net::Server::HTTP, PreFork with 4 children
# (the pool of the netserver and gunicorn cells; Net::Server wants max_spare < max_servers).  usage: perl netserver_http.pl PORT
use strict;
use warnings;

package Hello;
use base 'Net::Server::HTTP';

my $body = "Hello, World!\n";

sub process_http_request {
    print "Content-Type: text/plain\r\nContent-Length: " . length($body) . "\r\n\r\n" . $body;
}

package main;
my $port = shift or die "usage: $0 PORT\n";
Hello->run(host => '127.0.0.1', port => $port, ipv => 4, log_level => 0, server_type => 'PreFork',
           min_servers => 4, max_servers => 5, min_spare_servers => 0, max_spare_servers => 4);
