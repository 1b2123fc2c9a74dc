fn main(){}
mod clients;
mod server;
