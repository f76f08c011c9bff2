/** `npm run bench -- [options]`: the same command as `tlsfleet bench`. */
import { benchCommand } from './cli.js'

await benchCommand().name('npm run bench --').parseAsync(['node', 'bench', ...process.argv.slice(2)])
